//! `reef server`: one server of a production cluster in one process. It
//! supervises its own nats-server (operator mode, TLS, the JetStream store
//! under the data dir, routes to the other servers), and runs a coordinator
//! and a dedicated node's agent beside it. The first start on an empty data
//! dir creates the cluster: its keys, the admin's credential
//! (`admin.creds`), the server's own node credential; then it prints how to
//! point the CLI at the cluster and a token for the next machine.
//!
//! ```text
//! DATA_DIR/               the cluster directory (see reef_trust::dir): keys, CA, credentials
//! DATA_DIR/cluster.key    encrypts secrets at rest
//! DATA_DIR/servers.json   the cluster's servers as this one last knew them
//! DATA_DIR/nats/          nats.conf, the server's certificate, its JetStream store and log
//! DATA_DIR/node/          the agent's data: node.creds, jobs, instances
//! ```
//!
//! Servers are found in `reef-servers`: every server records itself there
//! and reads the others back every few seconds, keeping `servers.json` and
//! its nats-server's configuration current. A single server runs its
//! nats-server standalone; when a second one joins, the first moves its
//! state into a NATS cluster once ([`reef_server::migrate`]), and from then
//! on servers join and leave a running cluster.

mod host;
pub mod join;
mod members;

use crate::client;
use crate::daemons::{ControlArgs, NodeArgs};
use anyhow::{anyhow, Context as _, Result};
use clap::Args;
pub use host::PlaceArgs;
use host::ServerHost;
use reef_proto::servers::ServerRecord;
use reef_server::migrate::{self, Host as _};
use reef_server::natsd::Supervisor;
use reef_server::topology::{self, Shape};
use std::net::SocketAddr;
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
    #[command(flatten)]
    pub place: PlaceArgs,
    #[command(flatten)]
    pub control: ControlArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// How long the token printed on the first start may be used.
const FIRST_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// How often the servers' bucket is read back.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// A running coordinator or agent, stopped on its own.
struct Part {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Part {
    async fn stop(self) -> Result<()> {
        self.stop.cancel();
        self.task
            .await
            .map_err(|e| anyhow!("a server component panicked: {e}"))?
    }
}

pub async fn server(args: ServerArgs) -> Result<()> {
    // Signals are caught from here on: a SIGTERM at any later moment,
    // start-up included, stops what has been started.
    let mut signals = crate::Signals::new();
    let name = args.name.clone().unwrap_or_else(crate::daemons::host_name);
    reef_proto::node::validate_node_name(&name).map_err(|e| anyhow!("--name: {e}"))?;
    let nats_binary = crate::dev::find_nats_server()?;
    let dir = args.data_dir.clone();
    let hosts = args.place.public_hosts(args.node.advertise);
    let created = host::prepare(&dir, &args.cluster_name)?;
    let host = ServerHost::open(&dir, &name, &args.place, &hosts, nats_binary)?;
    let me = host.advertised.clone();
    let mut servers = topology::load(&dir)?;
    if !servers.iter().any(|server| server.name == me.name) {
        servers.push(me.clone());
    }
    topology::save(&dir, &servers)?;
    let listen = args.place.nats_listen;
    let mut shape = topology::shape(&name, &servers);

    let mut nats = match resume_move(&host, &shape, listen, &mut signals).await? {
        Some(nats) if migrate::unfinished(&host) => nats,
        // The cluster never formed: the single server's store is back.
        Some(nats) => {
            shape = Shape::Standalone;
            nats
        }
        None => {
            host.configure(&shape, listen)?;
            Supervisor::start(host.spec(listen))
        }
    };
    // Stopped while nats-server starts, it stops that too.
    tokio::select! {
        ready = nats.ready() => ready?,
        _ = signals.recv() => {
            nats.stop().await;
            return Ok(());
        }
    }
    if migrate::unfinished(&host) && !finish_move(&host, listen, &mut signals).await {
        nats.stop().await;
        return Ok(());
    }
    let mut nats = Some(nats);
    let local_url = format!("tls://{}", host::local(listen));
    let watcher = client::connect_daemon(
        &host.as_user("coordinator.creds", local_url.clone()),
        "reef-server",
    )
    .await?;
    let js = async_nats::jetstream::new(watcher.client.clone());
    // A server that joined starts its coordinator and agent once the
    // cluster's state, with its own record, is there.
    if shape != Shape::Standalone {
        let waited = tokio::select! {
            () = wait_for_state(&js, &name) => true,
            _ = signals.recv() => false,
        };
        if !waited {
            stop_nats(nats.take()).await;
            return Ok(());
        }
    }
    let mut coordinator = Some(start_coordinator(&args, &host, &local_url).await?);
    let agent = match start_agent(&args, &host, &hosts, &local_url).await {
        Ok(agent) => agent,
        Err(e) => {
            stop_part(coordinator.take()).await;
            stop_nats(nats.take()).await;
            return Err(e);
        }
    };
    let mut agent = Some(agent);
    let announced = announce(&host, &servers, listen, created, &mut signals).await;

    // The server a move into a cluster waits for, as last said.
    let mut waiting_for: Option<String> = None;
    let mut look = tokio::time::interval(LOOK_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        if !announced {
            break Ok(());
        }
        tokio::select! {
            _ = signals.recv() => break Ok(()),
            ended = wait_part(&mut coordinator) => break ended.and_then(|()| Err(anyhow!("the coordinator's supervisor stopped unexpectedly"))),
            ended = wait_part(&mut agent) => break ended.and_then(|()| Err(anyhow!("the agent stopped unexpectedly"))),
            _ = look.tick() => {
                if let Err(e) = members::record(&js, &me).await {
                    tracing::debug!(error = %e, "this server's record is not written yet");
                    continue;
                }
                let Ok(known) = members::read(&js).await else { continue };
                if known != servers {
                    servers = known;
                    topology::save(&dir, &servers)?;
                }
                let wanted = topology::shape(&name, &servers);
                if wanted == shape {
                    continue;
                }
                match (&shape, &wanted) {
                    (Shape::Standalone, Shape::Clustered { routes }) => {
                        if let Some(server) = unreachable(&servers, &name).await {
                            if waiting_for.as_deref() != Some(server.name.as_str()) {
                                tracing::info!(server = %server.name, route = %server.route, "waiting for the new server's nats-server to move into a cluster with it");
                                waiting_for = Some(server.name.clone());
                            }
                            continue;
                        }
                        waiting_for = None;
                        tracing::info!(?routes, "another server joined: moving this server's state into a NATS cluster");
                        stop_part(coordinator.take()).await;
                        let moved = move_into_cluster(&host, nats.take(), &wanted, listen).await;
                        nats = Some(moved.0);
                        match moved.1 {
                            Ok(()) => shape = wanted,
                            // Streams are in the cluster already: only forward.
                            Err(e) if migrate::unfinished(&host) => {
                                tracing::error!(error = %e, "the move into a cluster stopped half way; finishing it");
                                shape = wanted;
                                if !finish_move(&host, listen, &mut signals).await {
                                    break Ok(());
                                }
                            }
                            Err(e) => tracing::error!(error = %e, "the move into a cluster failed; this server stays alone and tries again"),
                        }
                        coordinator = Some(start_coordinator(&args, &host, &local_url).await?);
                    }
                    // Routes are for the next start: the servers of a
                    // running cluster already know each other.
                    _ => {
                        if let Err(e) = host.configure(&wanted, listen) {
                            tracing::warn!(error = %e, "could not rewrite the nats-server configuration");
                        }
                        shape = wanted;
                    }
                }
            }
        }
    };
    // The agent and the coordinator need NATS to stop cleanly.
    stop_part(agent.take()).await;
    stop_part(coordinator.take()).await;
    stop_nats(nats.take()).await;
    result
}

/// Finishes a move into a cluster a crash interrupted, if there is one;
/// returns the nats-server that runs after it.
async fn resume_move(
    host: &ServerHost,
    shape: &Shape,
    listen: SocketAddr,
    signals: &mut crate::Signals,
) -> Result<Option<Supervisor>> {
    if migrate::resume_stage(host)? != migrate::Stage::Restore {
        return Ok(None);
    }
    tracing::info!("finishing the move of this server's state into the cluster");
    let restored = tokio::select! {
        restored = migrate::restore(host, shape, listen) => restored,
        _ = signals.recv() => anyhow::bail!("stopped while finishing the move into the cluster; it goes on at the next start"),
    };
    Ok(Some(match restored {
        Ok(nats) => nats,
        Err((nats, e)) => {
            tracing::error!(error = %e, "the move into the cluster did not go through at start");
            nats
        }
    }))
}

/// Finishes a move into the cluster that stopped half way, trying again
/// every few seconds until it is done; false if stopped meanwhile.
async fn finish_move(host: &ServerHost, listen: SocketAddr, signals: &mut crate::Signals) -> bool {
    let mut said: Option<String> = None;
    loop {
        let finished = tokio::select! {
            finished = migrate::finish(host, listen) => finished,
            _ = signals.recv() => return false,
        };
        match finished {
            Ok(()) => {
                tracing::info!("the move into the cluster is finished");
                return true;
            }
            Err(e) => {
                let text = format!("{e:#}");
                if said.as_ref() != Some(&text) {
                    tracing::error!(error = %text, "the move into the cluster is not finished yet; trying again");
                    said = Some(text);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = signals.recv() => return false,
        }
    }
}

/// Steps the standalone nats-server through the move; returns the
/// nats-server that runs after it, and how the move went.
async fn move_into_cluster(
    host: &ServerHost,
    nats: Option<Supervisor>,
    shape: &Shape,
    listen: SocketAddr,
) -> (Supervisor, Result<()>) {
    let Some(nats) = nats else {
        let nats = Supervisor::start(host.spec(listen));
        return (nats, Err(anyhow!("no nats-server was running")));
    };
    if let Err(e) = migrate::take_snapshots(host, nats).await {
        // The single server's store is untouched: run it again as it was.
        if let Err(e) = host.configure(&Shape::Standalone, listen) {
            tracing::error!(error = %e, "could not write the standalone configuration again");
        }
        return (Supervisor::start(host.spec(listen)), Err(e.into()));
    }
    match migrate::restore(host, shape, listen).await {
        Ok(nats) => (nats, Ok(())),
        Err((nats, e)) => (nats, Err(e.into())),
    }
}

/// The first other server whose route listener does not answer, if any.
async fn unreachable<'s>(servers: &'s [ServerRecord], me: &str) -> Option<&'s ServerRecord> {
    for server in servers.iter().filter(|server| server.name != me) {
        let open = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(&server.route),
        )
        .await;
        if !matches!(open, Ok(Ok(_))) {
            return Some(server);
        }
    }
    None
}

/// Waits until the cluster's state holds this server's record.
async fn wait_for_state(js: &async_nats::jetstream::Context, name: &str) {
    let started = tokio::time::Instant::now();
    let mut said = started;
    while !members::holds(js, name).await {
        if said.elapsed() >= Duration::from_secs(30) {
            said = tokio::time::Instant::now();
            tracing::info!(
                waited = ?started.elapsed(),
                "waiting for the cluster's state (the other servers must be up and reachable)"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn wait_part(part: &mut Option<Part>) -> Result<()> {
    match part {
        Some(running) => {
            let ended = (&mut running.task).await;
            *part = None;
            ended.map_err(|e| anyhow!("a server component panicked: {e}"))?
        }
        None => std::future::pending().await,
    }
}

async fn stop_part(part: Option<Part>) {
    if let Some(part) = part {
        if let Err(e) = part.stop().await {
            eprintln!("reef server: {e:#}");
        }
    }
}

async fn stop_nats(nats: Option<Supervisor>) {
    if let Some(nats) = nats {
        nats.stop().await;
    }
}

/// Runs the coordinator until stopped. A coordinator that fails (it gives
/// up on a store that does not answer, as while the cluster's JetStream
/// elects its leaders) is started again after a growing delay: the
/// nats-server and the agent beside it keep running meanwhile.
async fn start_coordinator(args: &ServerArgs, host: &ServerHost, url: &str) -> Result<Part> {
    let nats = host.as_user("coordinator.creds", url.to_string());
    let servers = topology::load(&host.dir)?.len();
    let cluster_key = host.dir.join(reef_trust::bundle::CLUSTER_KEY);
    let mut config = reef_coordinator::Config {
        store: reef_coordinator::StoreConfig {
            replicas: reef_proto::servers::replicas_for(servers),
            logs_max_bytes: args.control.logs_max_bytes.min(i64::MAX as u64) as i64,
            audit_max_age: args.control.audit_retention,
            ..Default::default()
        },
        node_grace: args.control.node_grace,
        secrets_key: Some(cluster_key.clone()),
        name: host.name.clone(),
        leader_lease: args.control.leader_lease,
        acme: args.control.acme.config()?,
        node_issuer: Some(nats.identity()?.issuer),
        authority: None,
        retain_jobs: args.control.retain_jobs,
        metrics: args.control.coordinator_metrics.0,
        keep_releases: args.control.keep_releases,
        ui: match args.control.ui {
            Some(ui) => ui.0,
            // The default only where it is free: a port taken by something
            // else must not keep the coordinator from starting.
            None if std::net::TcpListener::bind(crate::daemons::SERVER_UI).is_ok() => {
                Some(crate::daemons::SERVER_UI)
            }
            None => {
                eprintln!(
                    "reef server: {} is taken, so no dashboard; set `ui` in server.toml (or --ui) to serve it elsewhere",
                    crate::daemons::SERVER_UI
                );
                None
            }
        },
        ui_link_ttl: args.control.ui_link_ttl,
    };
    if let Some(addr) = config.ui {
        println!("The dashboard: http://{addr}/ (sign in with a link from `reef ui`)");
    }
    config.authority = Some(crate::daemons::authority(&nats, &host.dir, Some(&cluster_key)).await?);
    let stop = CancellationToken::new();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let started = tokio::time::Instant::now();
            let ran = match client::connect_daemon(&nats, "reef-coordinator").await {
                Ok(connection) => {
                    reef_coordinator::run(connection.client, config.clone(), token.clone())
                        .await
                        .map_err(anyhow::Error::from)
                }
                Err(e) => Err(e),
            };
            if token.is_cancelled() {
                return ran.context("coordinator failed");
            }
            failures = match started.elapsed() >= COORDINATOR_STEADY {
                true => 1,
                false => failures + 1,
            };
            let delay = reef_server::natsd::restart_delay(failures).max(Duration::from_secs(1));
            match ran {
                Ok(()) => tracing::warn!(?delay, "the coordinator stopped; starting it again"),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), ?delay, "the coordinator failed; starting it again")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = token.cancelled() => return Ok(()),
            }
        }
    });
    Ok(Part { stop, task })
}

/// A coordinator that ran this long before it failed starts again at once.
const COORDINATOR_STEADY: Duration = Duration::from_secs(60);

async fn start_agent(
    args: &ServerArgs,
    host: &ServerHost,
    hosts: &[String],
    url: &str,
) -> Result<Part> {
    let nats = client::Nats {
        urls: url.to_string(),
        creds: Some(host.node_creds()),
        ca: Some(host.dir.join("tls/ca.pem")),
    };
    let mut node = crate::daemons::node_config(
        &nats,
        &args.node,
        &host.name,
        host.dir.join("node"),
        Some(reef_proto::node::TrustClass::Dedicated),
    )?;
    // Other nodes reach this one where other machines reach the server,
    // not where this process reaches its own nats-server.
    if node.advertise.is_none() {
        node.advertise = hosts.iter().find_map(|host| host.parse().ok());
    }
    let connection = client::connect_daemon(&nats, &format!("reef-agent-{}", host.name)).await?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    let label = host.name.clone();
    let task = tokio::spawn(async move {
        reef_node_agent::run(connection.client, node, token)
            .await
            .with_context(|| format!("agent {label} failed"))
    });
    Ok(Part { stop, task })
}

/// Prints where the cluster is and, on the first start, a token for the
/// next machine. Returns false when stopped meanwhile (the signal is then
/// spent here, and the server must stop).
async fn announce(
    host: &ServerHost,
    servers: &[ServerRecord],
    listen: SocketAddr,
    created: bool,
    signals: &mut crate::Signals,
) -> bool {
    let urls = topology::client_urls(servers).join(",");
    println!(
        "reef server {}: cluster {}, NATS at {urls}, data in {}",
        host.name,
        host.cluster.info.name,
        host.dir.display()
    );
    println!("The CLI on this machine:");
    println!("  {}", crate::cluster::export_line(&urls, &host.dir));
    println!(
        "(elsewhere: copy admin.creds and tls/ca.pem from the data dir, and use the same line)"
    );
    if !created {
        println!(
            "To add a machine: `reef token create [--server]` here, then `reef join [--server] TOKEN` on it."
        );
        return true;
    }
    let admin = host.as_user("admin.creds", format!("tls://{}", host::local(listen)));
    let token = tokio::select! {
        token = first_token(&admin, servers, &host.dir) => token,
        _ = signals.recv() => return false,
    };
    match token {
        Ok((token, expires_at_ms)) => {
            println!(
                "To add a server, run on it (single use, expires in {}; \
                 `reef token create --server` makes more):",
                crate::join::left(expires_at_ms)
            );
            println!("  reef join --server {token}");
            println!("(without --server, the token joins a machine as a dedicated node)");
        }
        Err(e) => eprintln!(
            "reef server: no join token yet ({e:#}); make one with `reef token create --server`"
        ),
    }
    true
}

/// A server token for the next machine, once the coordinator leads.
pub async fn first_token(
    admin: &client::Nats,
    servers: &[ServerRecord],
    dir: &Path,
) -> Result<(String, u64)> {
    let ca_pem = std::fs::read_to_string(dir.join("tls/ca.pem")).context("the cluster CA")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let minted = crate::join::mint(
            admin,
            topology::client_urls(servers),
            ca_pem.clone(),
            crate::join::Kind::Server,
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
