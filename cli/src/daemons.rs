//! `reef coordinator` and `reef agent`: thin shells that parse flags, connect,
//! and run the library until SIGINT or SIGTERM.

use crate::{client, parse_pairs, shutdown_signal, LabelArgs};
use anyhow::Result;
use clap::Args;
use reef_proto::units::{parse_duration, parse_size};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Args)]
pub struct CoordinatorArgs {
    /// Read flags from this TOML file: its fields are the flags' names
    /// with `_` for `-`; a flag given on the command line wins.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub control: ControlArgs,
    /// Replicas of every stream and bucket (3 on a 3-server NATS cluster).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub replicas: u8,
    /// The cluster key that encrypts secrets: 64 hex characters, mode 0600,
    /// created if missing. Keep it outside NATS; every coordinator needs the same one.
    #[arg(long, default_value = "/var/lib/reef/cluster.key")]
    pub secrets_key: PathBuf,
    /// This coordinator's name, shown for the leader [default: the host name].
    #[arg(long)]
    pub name: Option<String>,
    /// The cluster directory (`reef cluster init`): with it, the leader
    /// issues user credentials (`reef user add`) and revokes users and
    /// removed nodes at once.
    #[arg(long, value_name = "DIR")]
    pub cluster_dir: Option<PathBuf>,
}

/// How a coordinator runs the cluster: the flags `reef coordinator` and
/// `reef server` share.
#[derive(Args, Clone, Debug)]
pub struct ControlArgs {
    /// A node not heard from for this long is marked down.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub node_grace: std::time::Duration,
    /// Upper bound of the logs stream; the oldest lines are dropped beyond it.
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    pub logs_max_bytes: u64,
    /// How long the leader may go without renewing its lease before another
    /// coordinator takes over.
    #[arg(long, default_value = "3s", value_parser = parse_lease)]
    pub leader_lease: std::time::Duration,
    /// How long finished jobs, their allocations and finished app instances
    /// are kept before the leader deletes them.
    #[arg(long, default_value = "7d", value_parser = parse_retention)]
    pub retain_jobs: std::time::Duration,
    /// Where the coordinator serves `GET /metrics` (Prometheus text), or `off`.
    #[arg(long, default_value = "off", value_parser = parse_listen)]
    pub coordinator_metrics: Listen,
    /// How long the audit log keeps an entry.
    #[arg(long, default_value = "90d", value_parser = parse_retention)]
    pub audit_retention: std::time::Duration,
    /// How many releases of each app are kept (besides the one running, the
    /// one a rollout would revert to, and any with a live instance).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub keep_releases: u32,
    #[command(flatten)]
    pub acme: crate::tls_flags::AcmeArgs,
    /// Where the coordinator serves the web dashboard, or `off`
    /// [default: off for `reef coordinator`, 127.0.0.1:7480 for `reef server`].
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub ui: Option<Listen>,
    /// How long a sign-in link from `reef ui` stays valid (1s to 10m).
    #[arg(long, default_value = "5m", value_parser = parse_link_ttl)]
    pub ui_link_ttl: std::time::Duration,
}

/// The dashboard `reef server` serves unless told otherwise: loopback only.
pub const SERVER_UI: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7480);

fn parse_link_ttl(input: &str) -> Result<std::time::Duration, String> {
    let ttl = parse_duration(input).map_err(|e| e.to_string())?;
    if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(600)).contains(&ttl) {
        return Err(format!(
            "invalid link lifetime {input:?}: must be between 1s and 10m"
        ));
    }
    Ok(ttl)
}

pub fn parse_trust(input: &str) -> Result<reef_proto::node::TrustClass, String> {
    reef_proto::node::TrustClass::parse(input)
}

fn parse_retention(input: &str) -> Result<std::time::Duration, String> {
    let retain = parse_duration(input).map_err(|e| e.to_string())?;
    if retain < std::time::Duration::from_secs(1) {
        return Err(format!("invalid retention {input:?}: at least 1s"));
    }
    Ok(retain)
}

fn parse_lease(input: &str) -> Result<std::time::Duration, String> {
    let lease = parse_duration(input).map_err(|e| e.to_string())?;
    if !(std::time::Duration::from_millis(600)..=std::time::Duration::from_secs(60))
        .contains(&lease)
    {
        return Err(format!(
            "invalid leader lease {input:?}: must be between 600ms and 60s"
        ));
    }
    Ok(lease)
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AgentArgs {
    /// What the machine's owner decides from the machine itself.
    #[command(subcommand)]
    pub owner: Option<OwnerCommand>,
    /// Read flags from this TOML file (`reef join` writes one): its fields
    /// are the flags' names with `_` for `-`; a flag given on the command
    /// line wins.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's name (letters, digits, '.', '_', '-').
    #[arg(long, required = true)]
    pub name: Option<String>,
    /// Where the node id, job records and job working directories live
    /// [default: /var/lib/reef/NAME].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// `dedicated` (a server you run: gets app replicas and jobs) or
    /// `contributed` (a lent machine: gets batch jobs, never app replicas).
    /// The node's credential decides; this only checks it says the same.
    #[arg(long, value_parser = parse_trust)]
    pub trust: Option<reef_proto::node::TrustClass>,
    /// Enroll with this join token (`reef token create`) on the first
    /// start: the node makes its own key and keeps the credential it gets
    /// in its data dir; later starts need no token.
    #[arg(
        long,
        env = "REEF_JOIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub join: Option<String>,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// What a node offers and where it listens: the flags `reef agent`,
/// `reef join` and `reef server` share.
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    #[command(flatten)]
    pub labels: LabelArgs,
    /// CPU cores to offer [default: all of the machine's].
    #[arg(long, value_parser = parse_cpu)]
    pub cpu: Option<u32>,
    /// Memory to offer, e.g. 8G [default: all of the machine's].
    #[arg(long, value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Disk to offer, e.g. 100G [default: the data dir's free space].
    #[arg(long, value_parser = parse_size)]
    pub disk: Option<u64>,
    /// GPUs to offer: `all`, `none`, or indices such as 0,2 [default: all].
    #[arg(long, value_parser = parse_gpus)]
    pub gpus: Option<GpuOffer>,
    /// Where the node proxy listens for HTTP, or `off`.
    #[arg(long, default_value = "0.0.0.0:80", value_parser = parse_listen)]
    pub http: Listen,
    #[command(flatten)]
    pub https: crate::tls_flags::HttpsArgs,
    /// Where other nodes forward requests to this node's apps, over mutual
    /// TLS with node certificates from the cluster CA, or `off`. Open it to
    /// the other nodes only. Contributed nodes never listen here.
    #[arg(long, default_value = "0.0.0.0:7443", value_parser = parse_listen)]
    pub peer: Listen,
    /// Time between SIGTERM and SIGKILL when a job is stopped.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub stop_grace: std::time::Duration,
    /// A directory jobs may ask to work in (`reef run --workdir`), or under
    /// (repeatable). Without it, every job works in a fresh directory of its own.
    #[arg(long = "allow-workdir", value_name = "DIR")]
    pub allow_workdir: Vec<PathBuf>,
    /// The IP other nodes reach this node's `--peer` listener at [default:
    /// the `--peer` IP unless it is a wildcard, else this machine's IP toward NATS].
    #[arg(long)]
    pub advertise: Option<std::net::IpAddr>,
    /// Where `GET /metrics` (Prometheus text) is served, or `off`.
    #[arg(long, default_value = "127.0.0.1:9464", value_parser = parse_listen)]
    pub metrics: Listen,
    /// Log one line for every request the node's proxy answers (method,
    /// host, path, status, app, backend, client, bytes, duration). Off by
    /// default: at high request rates a line per request costs about as
    /// much as proxying it, and `/metrics` counts every request anyway.
    #[arg(long)]
    pub access_log: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// The sandbox every job and app instance runs in, and what the machine's
/// owner lets work use.
#[derive(Args, Clone, Debug)]
pub struct SandboxArgs {
    /// `on`: every job and instance runs in bubblewrap as an unprivileged
    /// uid, with its own namespaces and control group; `off` (dedicated
    /// nodes only, shown in `reef nodes`): as the agent's user, with only
    /// the control group's limits.
    #[arg(long, default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub sandbox: bool,
    /// The uids sandboxed work runs as, FIRST-LAST [default: a block of
    /// 65536 from 2000000000 chosen by the node id].
    #[arg(long, value_name = "FIRST-LAST", value_parser = reef_node_agent::sandbox::UidRange::parse)]
    pub sandbox_uids: Option<reef_node_agent::sandbox::UidRange>,
    /// Also show this host path to sandboxed work, read-only (repeatable;
    /// the system's /usr, /lib*, /bin and parts of /etc always are).
    #[arg(long = "sandbox-bind-ro", value_name = "PATH")]
    pub sandbox_bind_ro: Vec<PathBuf>,
    /// A host directory every job and instance may write, at the same path
    /// (repeatable): shared by all of them, for scratch space or datasets.
    #[arg(long = "sandbox-bind", value_name = "DIR")]
    pub sandbox_bind: Vec<PathBuf>,
    /// Processes and threads each job or instance may have at once.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..=4_194_304))]
    pub max_pids: u32,
    /// Let jobs that ask for it (`reef run --network`) use the network on
    /// this contributed node; dedicated nodes always do.
    #[arg(long)]
    pub allow_network: bool,
    /// Where the GPU device nodes are.
    #[arg(long, default_value = "/dev", hide = true)]
    pub gpu_device_dir: PathBuf,
}

impl SandboxArgs {
    pub fn settings(&self) -> reef_node_agent::sandbox::Settings {
        reef_node_agent::sandbox::Settings {
            enabled: self.sandbox,
            uids: self.sandbox_uids,
            extra_readonly: self.sandbox_bind_ro.clone(),
            extra_writable: self.sandbox_bind.clone(),
            pids_max: self.max_pids,
            allow_network: self.allow_network,
            device_dir: self.gpu_device_dir.clone(),
        }
    }
}

pub fn parse_on_off(input: &str) -> Result<bool, String> {
    match input {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("invalid value {input:?}: expected on or off")),
    }
}

impl AgentArgs {
    /// The node's name (clap insists on it when the agent runs).
    pub fn node_name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// `reef agent pause` and `reef agent resume`, run on the node's machine.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum OwnerCommand {
    /// Take no new work (the cluster stops sending it within a heartbeat);
    /// running jobs finish, unless --stop-jobs.
    Pause {
        /// Stop the jobs running now too (they are reported lost, and a job
        /// that asked for retries runs again elsewhere).
        #[arg(long)]
        stop_jobs: bool,
        #[command(flatten)]
        at: AgentDir,
    },
    /// Take work again.
    Resume {
        #[command(flatten)]
        at: AgentDir,
    },
}

/// Which agent on this machine.
#[derive(Args, Clone, Debug)]
pub struct AgentDir {
    /// The agent's name: its data is in /var/lib/reef/NAME.
    #[arg(long, required_unless_present = "data_dir")]
    pub name: Option<String>,
    /// The agent's data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Pauses or resumes the agent whose data is on this machine.
pub fn owner(command: OwnerCommand) -> Result<()> {
    let (at, control) = match command {
        OwnerCommand::Pause { stop_jobs, at } => (
            at,
            reef_node_agent::owner::OwnerControl {
                paused: true,
                stop_jobs,
            },
        ),
        OwnerCommand::Resume { at } => (at, Default::default()),
    };
    let dir = at
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::default_data_dir(at.name.as_deref().unwrap_or_default()));
    reef_node_agent::owner::write(&dir, control).map_err(|e| anyhow::anyhow!(e))?;
    match (control.paused, control.stop_jobs) {
        (true, true) => println!("paused: no new work, and the jobs running now are being stopped"),
        (true, false) => println!("paused: no new work; the jobs running now finish"),
        (false, _) => println!("resumed: this node takes work again"),
    }
    Ok(())
}

/// The GPUs an agent offers (`--gpus`).
#[derive(Clone, Debug)]
pub struct GpuOffer(pub Option<Vec<u32>>);

fn parse_gpus(input: &str) -> Result<GpuOffer, String> {
    match input {
        "all" => Ok(GpuOffer(None)),
        "none" => Ok(GpuOffer(Some(Vec::new()))),
        list => list
            .split(',')
            .map(|index| index.trim().parse::<u32>())
            .collect::<Result<Vec<_>, _>>()
            .map(|indices| GpuOffer(Some(indices)))
            .map_err(|_| {
                format!("invalid GPUs {input:?}: expected all, none, or indices like 0,2")
            }),
    }
}

/// A listen address, or none.
#[derive(Clone, Copy, Debug)]
pub struct Listen(pub Option<std::net::SocketAddr>);

fn parse_listen(input: &str) -> Result<Listen, String> {
    if input == "off" {
        return Ok(Listen(None));
    }
    input.parse().map(|addr| Listen(Some(addr))).map_err(|_| {
        format!("invalid address {input:?}: expected HOST:PORT (e.g. 0.0.0.0:80) or off")
    })
}

/// Parses a CPU amount in cores (`2`, `0.5`) into thousandths of a core.
pub fn parse_cpu(input: &str) -> Result<u32, String> {
    let cores: f64 = input
        .trim()
        .parse()
        .map_err(|_| format!("invalid cpu {input:?}: expected a number of cores, e.g. 0.5 or 2"))?;
    if !(0.001..=1024.0).contains(&cores) {
        return Err(format!(
            "invalid cpu {input:?}: must be between 0.001 and 1024 cores"
        ));
    }
    Ok((cores * 1000.0).round() as u32)
}

pub fn coordinator_config(args: &CoordinatorArgs) -> reef_coordinator::Config {
    reef_coordinator::Config {
        store: reef_coordinator::StoreConfig {
            replicas: args.replicas as usize,
            logs_max_bytes: args.control.logs_max_bytes.min(i64::MAX as u64) as i64,
            audit_max_age: args.control.audit_retention,
            ..Default::default()
        },
        node_grace: args.control.node_grace,
        secrets_key: Some(args.secrets_key.clone()),
        name: args.name.clone().unwrap_or_else(host_name),
        leader_lease: args.control.leader_lease,
        acme: None,
        node_issuer: None,
        authority: None,
        retain_jobs: args.control.retain_jobs,
        metrics: args.control.coordinator_metrics.0,
        keep_releases: args.control.keep_releases,
        ui: args.control.ui.and_then(|ui| ui.0),
        ui_link_ttl: args.control.ui_link_ttl,
    }
}

/// The machine's host name, or `coordinator` if it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "coordinator".into())
}

pub fn agent_config(nats: &client::Nats, args: &AgentArgs) -> Result<reef_node_agent::Config> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::default_data_dir(args.node_name()));
    node_config(nats, &args.node, args.node_name(), data_dir, args.trust)
}

/// An agent's settings from its flags and its credential (`nats.creds`),
/// which decides its node id and trust class; `trust`, when given, must
/// say the same.
pub fn node_config(
    nats: &client::Nats,
    args: &NodeArgs,
    name: &str,
    data_dir: PathBuf,
    trust: Option<reef_proto::node::TrustClass>,
) -> Result<reef_node_agent::Config> {
    let mut config = reef_node_agent::Config::new(name, data_dir);
    config.labels = parse_pairs("label", &args.labels.labels)?;
    config.cpu_millis = args.cpu;
    config.memory_bytes = args.memory;
    config.disk_bytes = args.disk;
    config.gpus = args.gpus.clone().and_then(|offer| offer.0);
    config.stop_grace = args.stop_grace;
    config.allowed_workdirs = args.allow_workdir.clone();
    config.http = args.http.0;
    config.https = args.https.https.0;
    config.peer = args.peer.0;
    config.advertise = args.advertise;
    if let Some(ca) = &nats.ca {
        config.cluster_ca = Some(
            std::fs::read(ca).map_err(|e| anyhow::anyhow!("--nats-ca {}: {e}", ca.display()))?,
        );
    }
    config.nats_servers = nats.urls.split(',').map(str::to_string).collect();
    let who = nats.identity()?;
    let Some((node, credential_trust)) = who.node else {
        anyhow::bail!(
            "--creds: the credential of {} is a {} credential, not a node's",
            who.name,
            who.role
        );
    };
    config.node_id = Some(node);
    config.credential = Some(nats.jwt()?);
    config.assignment_key = Some(who.assignment_key.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "--creds: this node's credential names no assignment key (it predates signed \
             commands): issue the node a new one"
        )
    })?);
    // The trust class is the one the credential was issued with.
    config.trust = match credential_trust {
        reef_trust::NodeTrust::Dedicated => reef_proto::node::TrustClass::Dedicated,
        reef_trust::NodeTrust::Contributed => reef_proto::node::TrustClass::Contributed,
    };
    if let Some(asked) = trust.filter(|asked| *asked != config.trust) {
        anyhow::bail!(
            "--trust {asked:?}: this node's credential makes it {:?}",
            config.trust
        );
    }
    config.metrics = args.metrics.0;
    config.sandbox = args.sandbox.settings();
    Ok(config)
}

pub async fn coordinator(nats: &client::Nats, args: CoordinatorArgs) -> Result<()> {
    let mut config = coordinator_config(&args);
    config.acme = args.control.acme.config()?;
    // Node credentials are signed by the same key as the coordinators'.
    config.node_issuer = Some(nats.identity()?.issuer);
    let Some(dir) = &args.cluster_dir else {
        anyhow::bail!(
            "--cluster-dir DIR is needed: the coordinator signs every command to a node with \
             the cluster's assignment key, and issues and revokes credentials with its keys"
        );
    };
    config.authority = Some(authority(nats, dir, Some(&args.secrets_key)).await?);
    let client = client::connect_daemon(nats, "reef-coordinator").await?;
    let shutdown = CancellationToken::new();
    until_signal(
        reef_coordinator::run(client.client.clone(), config, shutdown.clone()),
        shutdown,
    )
    .await?;
    client.flush().await.ok();
    Ok(())
}

/// The agent's NATS settings: its `--creds` if given; else what an earlier
/// enrolment left in its data dir; else an enrolment with `--join TOKEN`.
async fn node_nats(nats: &client::Nats, args: &AgentArgs) -> Result<client::Nats> {
    if nats.creds.is_some() {
        if args.join.is_some() {
            anyhow::bail!("--join: this agent already has a credential (--creds)");
        }
        return Ok(nats.clone());
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::default_data_dir(args.node_name()));
    let enrolled = match crate::join::enrolled(&data_dir)? {
        Some(enrolled) => enrolled,
        None => match &args.join {
            Some(token) => crate::join::enroll(token, &data_dir).await?,
            None => anyhow::bail!(
                "no credential: pass --join TOKEN (from `reef token create`) on the first start, or --creds FILE"
            ),
        },
    };
    Ok(client::Nats {
        urls: enrolled.urls,
        creds: Some(enrolled.creds),
        ca: Some(enrolled.ca),
    })
}

pub async fn agent(nats: &client::Nats, args: AgentArgs) -> Result<()> {
    let nats = &node_nats(nats, &args).await?;
    let config = agent_config(nats, &args)?;
    let client = client::connect_daemon(nats, &format!("reef-agent-{}", args.node_name())).await?;
    if nats.creds.as_deref() == Some(config.data_dir.join("node.creds").as_path()) {
        remember_servers(&client.client, &config.data_dir).await;
    }
    let shutdown = CancellationToken::new();
    until_signal(
        reef_node_agent::run(client.client, config, shutdown.clone()),
        shutdown,
    )
    .await?;
    Ok(())
}

/// Adds the servers the cluster tells of to an enrolled node's
/// `nats-urls`, so that a restart while the server it joined through is
/// gone still finds the others. Best effort: a failure costs nothing now.
async fn remember_servers(client: &async_nats::Client, data_dir: &std::path::Path) {
    if tokio::time::timeout(std::time::Duration::from_secs(5), client.flush())
        .await
        .is_err()
    {
        return;
    }
    let file = data_dir.join("nats-urls");
    let Ok(known) = std::fs::read_to_string(&file) else {
        return;
    };
    let mut urls: Vec<String> = known
        .trim()
        .split(',')
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect();
    let before = urls.len();
    for told in client.server_info().connect_urls {
        let url = format!("tls://{told}");
        if reef_proto::servers::validate_address("server", &told).is_ok() && !urls.contains(&url) {
            urls.push(url);
        }
    }
    if urls.len() > before {
        match crate::join::write_replacing(&file, urls.join(",").as_bytes()) {
            Ok(()) => tracing::info!(servers = %urls.join(","), "remembered the cluster's servers"),
            Err(e) => tracing::debug!(error = %e, "could not remember the cluster's servers"),
        }
    }
}

/// The cluster's keys in `dir` and a system-account connection (with
/// `dir/system.creds`) to push account updates through.
/// `cluster_key` is the file of the key that encrypts secrets, which a
/// server that joins receives with the cluster's keys.
pub async fn authority(
    nats: &client::Nats,
    dir: &std::path::Path,
    cluster_key: Option<&std::path::Path>,
) -> Result<std::sync::Arc<reef_coordinator::Authority>> {
    let cluster = reef_trust::ClusterDir::open(dir)?;
    let creds = dir.join("system.creds");
    let mut options = async_nats::ConnectOptions::with_credentials_file(&creds)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", creds.display()))?
        .name("reef-coordinator-system")
        .retry_on_initial_connect()
        .max_reconnects(None);
    if let Some(ca) = &nats.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    let system = options
        .connect(client::parse_servers(&nats.urls)?)
        .await
        .map_err(|e| anyhow::anyhow!("system account connection to {}: {e}", nats.urls))?;
    let assign = cluster.assignment_key()?;
    Ok(std::sync::Arc::new(reef_coordinator::Authority {
        dir: cluster,
        system,
        assign,
        cluster_key: cluster_key.map(std::path::Path::to_path_buf),
    }))
}

/// Drives `run` to completion; on SIGINT or SIGTERM, cancels `shutdown` and
/// lets `run` finish its clean shutdown.
async fn until_signal<E>(
    run: impl std::future::Future<Output = Result<(), E>>,
    shutdown: CancellationToken,
) -> Result<(), E> {
    tokio::pin!(run);
    tokio::select! {
        result = &mut run => result,
        _ = shutdown_signal() => {
            shutdown.cancel();
            run.await
        }
    }
}

/// Sends SIGTERM to a child process.
#[cfg(test)]
mod tests {
    #[test]
    fn cpu_amounts() {
        assert_eq!(super::parse_cpu("2"), Ok(2000));
        assert_eq!(super::parse_cpu("0.25"), Ok(250));
        assert!(super::parse_cpu("0").is_err());
        assert!(super::parse_cpu("lots").is_err());
        assert!(super::parse_cpu("NaN").is_err());
    }
}
