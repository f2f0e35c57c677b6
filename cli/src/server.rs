//! `reef server`: one dedicated server of a production cluster in one
//! process. It supervises its own nats-server (operator mode, TLS, the
//! JetStream store under the data dir), and runs a coordinator and an agent
//! beside it. The first start on an empty data dir creates the cluster: its
//! keys, the admin's credential (`admin.creds`), the server's own node
//! credential; then it prints how to point the CLI at the cluster and a
//! join token for the next machine.
//!
//! ```text
//! DATA_DIR/               the cluster directory (see reef_trust::dir): keys, CA, credentials
//! DATA_DIR/cluster.key    encrypts secrets at rest
//! DATA_DIR/nats/          nats.conf, the server's certificate, its JetStream store and log
//! DATA_DIR/node/          the agent's data: node.creds, node id, jobs, instances
//! ```

use crate::client;
use crate::daemons::{ControlArgs, NodeArgs};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Args)]
pub struct ServerArgs {
    /// Read flags from this TOML file (/etc/reef/server.toml under the
    /// reef-server unit): its fields are the flags' names with `_` for `-`;
    /// a flag given on the command line wins.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the cluster's keys, the NATS store and this server's node live.
    #[arg(long, default_value = "/var/lib/reef")]
    pub data_dir: PathBuf,
    /// This server's name: its node's, its coordinator's and its
    /// nats-server's [default: the host name].
    #[arg(long)]
    pub name: Option<String>,
    /// The cluster's name, given to it on the first start.
    #[arg(long, default_value = "reef")]
    pub cluster_name: String,
    /// Where nats-server listens for the agents, coordinators and the CLI.
    #[arg(long, default_value = "0.0.0.0:4222")]
    pub nats_listen: SocketAddr,
    /// A name or IP address other machines reach this server at
    /// (repeatable); all go in its TLS certificate, and the first in join
    /// tokens [default: --advertise, else this machine's IP on its default
    /// route].
    #[arg(long = "host", value_name = "NAME|IP")]
    pub hosts: Vec<String>,
    #[command(flatten)]
    pub control: ControlArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// How long the token printed on the first start may be used.
const FIRST_TOKEN_TTL: Duration = Duration::from_secs(3600);

pub async fn server(args: ServerArgs) -> Result<()> {
    // Signals are caught from here on: a SIGTERM at any later moment,
    // start-up included, stops what has been started.
    let mut signals = crate::Signals::new();
    let name = args.name.clone().unwrap_or_else(crate::daemons::host_name);
    reef_proto::node::validate_node_name(&name).map_err(|e| anyhow!("--name: {e}"))?;
    let nats_server = crate::dev::find_nats_server()?;
    let dir = args.data_dir.clone();
    let hosts = public_hosts(&args);
    let created = prepare(&dir, &name, &args, &hosts)?;
    let port = args.nats_listen.port();
    let local = SocketAddr::new(local_ip(args.nats_listen.ip()), port);
    let mut nats = crate::natsd::Supervisor::start(crate::natsd::Spec {
        binary: nats_server,
        config: dir.join("nats/nats.conf"),
        log: dir.join("nats/nats-server.log"),
        probe: local,
        pid_file: dir.join("nats/nats-server.pid"),
    });
    tokio::select! {
        ready = nats.ready() => ready?,
        _ = signals.recv() => {
            nats.stop().await;
            return Ok(());
        }
    }
    let as_user = |creds: PathBuf| client::Nats {
        urls: format!("tls://{local}"),
        creds: Some(creds),
        ca: Some(dir.join("tls/ca.pem")),
    };
    let shutdown = CancellationToken::new();
    let started = tokio::select! {
        started = start(&args, &name, &dir, &hosts, &as_user, &shutdown) => started,
        _ = signals.recv() => {
            nats.stop().await;
            return Ok(());
        }
    };
    let mut tasks = match started {
        Ok(tasks) => tasks,
        Err(e) => {
            nats.stop().await;
            return Err(e);
        }
    };
    let public_url = format!("tls://{}:{port}", url_host(&hosts[0]));
    println!(
        "reef server {name}: cluster {}, NATS at {public_url}, data in {}",
        reef_trust::ClusterDir::open(&dir)?.info.name,
        dir.display()
    );
    println!("The CLI on this machine:");
    println!(
        "  {}",
        crate::cluster::export_line(&format!("{}:{port}", url_host(&hosts[0])), &dir)
    );
    println!(
        "(elsewhere: copy admin.creds and tls/ca.pem from the data dir, and use the same line)"
    );
    if created {
        let admin = as_user(dir.join("admin.creds"));
        let token = tokio::select! {
            token = first_token(&admin, &public_url, &dir) => token,
            _ = signals.recv() => Err(anyhow!("stopped")),
        };
        match token {
            Ok((token, expires_at_ms)) => {
                println!(
                    "To add a machine, run on it (single use, expires in {}; \
                     `reef token create` makes more):",
                    crate::join::left(expires_at_ms)
                );
                println!("  reef join {token}");
            }
            Err(e) => eprintln!(
                "reef server: no join token yet ({e:#}); make one with `reef token create`"
            ),
        }
    } else {
        println!("To add a machine: `reef token create` here, then `reef join TOKEN` on it.");
    }
    let result = tokio::select! {
        _ = signals.recv() => Ok(()),
        Some(ended) = tasks.join_next() => match ended {
            Ok(Ok(())) => Err(anyhow!("a server component stopped unexpectedly")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow!("a server component panicked: {e}")),
        },
    };
    shutdown.cancel();
    while let Some(ended) = tasks.join_next().await {
        if let Ok(Err(e)) = ended {
            eprintln!("reef server: {e:#}");
        }
    }
    // Last: the agent and coordinator needed NATS to stop cleanly.
    nats.stop().await;
    result
}

/// The names and addresses other machines reach this server at.
fn public_hosts(args: &ServerArgs) -> Vec<String> {
    if !args.hosts.is_empty() {
        return args.hosts.clone();
    }
    let ip = args
        .node
        .advertise
        .or_else(|| (!args.nats_listen.ip().is_unspecified()).then(|| args.nats_listen.ip()))
        .or_else(default_route_ip);
    match ip {
        Some(ip) => vec![ip.to_string()],
        None => vec![crate::daemons::host_name()],
    }
}

/// This machine's address on its default route (no packet is sent).
fn default_route_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // TEST-NET-1: routed like any public address, never answered.
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// The address this process reaches its own nats-server at.
fn local_ip(listen: IpAddr) -> IpAddr {
    match listen {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    }
}

/// A host for a URL: an IPv6 address in brackets.
fn url_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host.to_string(),
    }
}

/// The cluster in `dir` (created when empty; true then), its secrets key,
/// this server's node credential and its nats-server configuration.
fn prepare(dir: &Path, name: &str, args: &ServerArgs, hosts: &[String]) -> Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    if dir.join("node.creds").exists() && !dir.join("cluster.json").exists() {
        bail!(
            "{} holds a node that joined a cluster (`reef join`), not a server's cluster: \
             pass another --data-dir",
            dir.display()
        );
    }
    let created = !dir.join("cluster.json").exists();
    let cluster = match created {
        true => reef_trust::ClusterDir::init(dir, &args.cluster_name)?,
        false => reef_trust::ClusterDir::open(dir)?,
    };
    let key = dir.join("cluster.key");
    reef_secrets::ClusterKey::load_or_create(&key)
        .map_err(|e| anyhow!("{}: {e}", key.display()))?;
    let creds = dir.join("node/node.creds");
    if !creds.exists() {
        // A node that ran before keeps its id.
        let id = std::fs::read_to_string(dir.join("node/node-id"))
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or_else(reef_proto::NodeId::new);
        let text = cluster.issue_node(id, reef_trust::NodeTrust::Dedicated)?;
        std::fs::create_dir_all(dir.join("node"))?;
        crate::cluster::write_private(&creds, text.as_bytes())?;
    }
    let listen_ip = local_ip(args.nats_listen.ip());
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        listen_ip.to_string(),
        crate::daemons::host_name(),
    ];
    names.extend(hosts.iter().cloned());
    names.sort();
    names.dedup();
    cluster.write_server_config(reef_trust::ServerSpec {
        name: name.to_string(),
        listen: args.nats_listen.to_string(),
        hosts: names,
        dir: dir.join("nats"),
        cluster: None,
        max_payload: None,
    })?;
    Ok(created)
}

/// Connects and starts the coordinator and the agent.
async fn start(
    args: &ServerArgs,
    name: &str,
    dir: &Path,
    hosts: &[String],
    as_user: &dyn Fn(PathBuf) -> client::Nats,
    shutdown: &CancellationToken,
) -> Result<tokio::task::JoinSet<Result<()>>> {
    let mut tasks = tokio::task::JoinSet::new();
    let coordinator_nats = as_user(dir.join("coordinator.creds"));
    let mut config = reef_coordinator::Config {
        store: reef_coordinator::StoreConfig {
            replicas: 1,
            logs_max_bytes: args.control.logs_max_bytes.min(i64::MAX as u64) as i64,
            ..Default::default()
        },
        node_grace: args.control.node_grace,
        secrets_key: Some(dir.join("cluster.key")),
        name: name.to_string(),
        leader_lease: args.control.leader_lease,
        acme: args.control.acme.config()?,
        node_issuer: Some(coordinator_nats.identity()?.issuer),
        authority: None,
        retain_jobs: args.control.retain_jobs,
        keep_releases: args.control.keep_releases,
    };
    config.authority = Some(crate::daemons::authority(&coordinator_nats, dir).await?);
    let coordinator = client::connect_daemon(&coordinator_nats, "reef-coordinator").await?;
    let token = shutdown.clone();
    tasks.spawn(async move {
        reef_coordinator::run(coordinator.client, config, token)
            .await
            .context("coordinator failed")
    });

    let node_nats = as_user(dir.join("node/node.creds"));
    let mut node = crate::daemons::node_config(
        &node_nats,
        &args.node,
        name,
        dir.join("node"),
        Some(reef_proto::node::TrustClass::Dedicated),
    )?;
    // Other nodes reach this one where other machines reach the server,
    // not where this process reaches its own nats-server.
    if node.advertise.is_none() {
        node.advertise = hosts.iter().find_map(|host| host.parse().ok());
    }
    let agent = client::connect_daemon(&node_nats, &format!("reef-agent-{name}")).await?;
    let token = shutdown.clone();
    let label = name.to_string();
    tasks.spawn(async move {
        reef_node_agent::run(agent.client, node, token)
            .await
            .with_context(|| format!("agent {label} failed"))
    });
    Ok(tasks)
}

/// A join token for the next machine, once the coordinator leads.
async fn first_token(admin: &client::Nats, url: &str, dir: &Path) -> Result<(String, u64)> {
    let ca_pem = std::fs::read_to_string(dir.join("tls/ca.pem")).context("the cluster CA")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let minted = crate::join::mint(
            admin,
            vec![url.to_string()],
            ca_pem.clone(),
            reef_proto::node::TrustClass::Dedicated,
            Default::default(),
            FIRST_TOKEN_TTL,
        )
        .await;
        match minted {
            Ok(token) => return Ok(token),
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
