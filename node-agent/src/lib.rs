//! The reef node agent: one per machine.
//!
//! It keeps a stable node id in its data directory, registers the machine's
//! resources and labels, heartbeats, pulls its assignments from its own
//! durable JetStream consumer (acknowledging each only after recording it on
//! disk), runs each job as a process group, ships its output, and reports every
//! state change. After a restart it neither re-runs a finished job nor loses
//! the report of one that was running.
//!
//! - `identity`, `resources`: who this node is and what it offers.
//! - `records`: the durable per-allocation records.
//! - `intake`: the assignment consumer.
//! - `executor`, `process`, `logs`: running jobs.
//! - `report`: registration, heartbeats and events.
//! - `tls`: the HTTPS listener, its certificates, and ACME challenge answers.
//! - `peer`: the node's certificate for the peer links, and the peer listener
//!   other nodes forward to.
//! - `routes_watch`, `advertise`: following the cluster's routes, and the address
//!   other nodes reach this node's peer listener at.
//! - `metrics`: the `/metrics` endpoint.
//! - `owner`: what the machine's owner decides locally (`reef agent pause`).
//! - `sandbox`: the namespaces, uid and control group every job and app
//!   instance runs in, and `reef sandbox-exec`.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod advertise;
mod backup;
mod doctor;
pub mod error;
mod executor;
pub mod gpus;
pub mod identity;
mod intake;
pub mod logs;
mod metrics;
mod outputs;
pub mod owner;
mod peer;
pub mod process;
pub mod records;
mod recovery;
mod report;
pub mod resources;
mod routes_watch;
pub mod sandbox;
mod service;
mod services;
mod tls;

pub use error::AgentError;

use async_nats::jetstream;
use records::{Durability, Records};
use reef_proto::alloc::AllocState;
use reef_proto::node::NodeResources;
use reef_proto::{AllocId, NodeId};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

/// Agent settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Human name of the node.
    pub name: String,
    /// Where the node id, allocation records and job working directories live.
    pub data_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    /// Offer this many thousandths of a core instead of what the machine has.
    pub cpu_millis: Option<u32>,
    /// Offer this much memory instead of what the machine has.
    pub memory_bytes: Option<u64>,
    /// Offer this much disk instead of the data dir's free space.
    pub disk_bytes: Option<u64>,
    /// Offer only these GPUs (by index; None: every one detected).
    pub gpus: Option<Vec<u32>>,
    /// Between SIGTERM and SIGKILL when a job is stopped.
    pub stop_grace: Duration,
    /// Directories a job may ask to work in (`reef run --workdir`): an
    /// existing directory inside one of them. None by default: every job
    /// works in a fresh directory of its own.
    pub allowed_workdirs: Vec<PathBuf>,
    pub heartbeat_interval: Duration,
    /// Where the node proxy listens for HTTP (None: no proxy).
    pub http: Option<std::net::SocketAddr>,
    /// Where the node proxy listens for HTTPS, serving the cluster's
    /// certificates (None: no HTTPS).
    pub https: Option<std::net::SocketAddr>,
    /// Whether this is a dedicated server or a contributed machine.
    pub trust: reef_proto::node::TrustClass,
    /// Where the node-to-node listener takes requests other nodes forward
    /// (mutual TLS; None: none, and this node takes no forwarded requests).
    /// Contributed nodes never open it.
    pub peer: Option<std::net::SocketAddr>,
    /// The cluster CA (PEM): the other nodes' certificates are checked
    /// against it. Without it there is no node-to-node forwarding.
    pub cluster_ca: Option<Vec<u8>>,
    /// The IP other nodes reach the peer listener at (None: see `advertise`).
    pub advertise: Option<std::net::IpAddr>,
    /// The NATS server URLs, to find the local IP other nodes reach when
    /// neither `advertise` nor a specific `http` address gives it.
    pub nats_servers: Vec<String>,
    /// Where `/metrics` is served (None: not served).
    pub metrics: Option<std::net::SocketAddr>,
    /// The node id the node's credential was issued for (None: the id in
    /// the data dir, or a fresh one).
    pub node_id: Option<NodeId>,
    /// The node's NATS user JWT, sent with its registration: the
    /// coordinator reads the node's trust class from it.
    pub credential: Option<String>,
    /// The public key every command must be signed with (from the node's
    /// credential). Without it every command is refused.
    pub assignment_key: Option<String>,
    /// The sandbox and its owner's controls.
    pub sandbox: sandbox::Settings,
}

impl Config {
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            data_dir: data_dir.into(),
            labels: BTreeMap::new(),
            cpu_millis: None,
            memory_bytes: None,
            disk_bytes: None,
            gpus: None,
            stop_grace: Duration::from_secs(5),
            allowed_workdirs: Vec::new(),
            heartbeat_interval: Duration::from_secs(1),
            http: None,
            https: None,
            trust: reef_proto::node::TrustClass::Dedicated,
            peer: None,
            cluster_ca: None,
            advertise: None,
            nats_servers: Vec::new(),
            metrics: None,
            node_id: None,
            credential: None,
            assignment_key: None,
            sandbox: sandbox::Settings::default(),
        }
    }
}

/// Everything the agent's tasks share.
pub(crate) struct Agent {
    client: async_nats::Client,
    js: jetstream::Context,
    node: NodeId,
    config: Config,
    resources: NodeResources,
    gpus: Vec<reef_proto::node::Gpu>,
    /// Where every job and instance runs.
    sandbox: sandbox::Sandbox,
    started_at_ms: u64,
    records: Records<records::LocalAlloc>,
    /// Opens the secrets sealed to this node.
    node_key: reef_secrets::NodeKey,
    instances: Records<service::LocalInstance>,
    services: service::Services,
    /// The managed services (Postgres) this node runs for apps.
    managed: services::Managed,
    router: reef_proxy::Router,
    /// Where other nodes reach this node's peer listener.
    proxy_addr: Option<std::net::SocketAddr>,
    /// Node-to-node TLS, for tunnels to other nodes' services.
    peer_tls: Option<reef_proxy::PeerTls>,
    /// Where clients reach this node's proxy (`reef doctor`, `reef nodes`).
    public: doctor::Public,
    /// Set once a coordinator accepted this node's registration.
    registered: tokio::sync::watch::Sender<bool>,
    /// Stop tokens of allocations that are live on this node.
    running: Mutex<HashMap<AllocId, CancellationToken>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Commands that failed to decode or validate, dropped.
    malformed: std::sync::atomic::AtomicU64,
    /// Commands refused by their seal, by reason.
    refused: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// The signed commands accepted, until they expire.
    replay: std::sync::Mutex<reef_proto::seal::ReplayWindow>,
    /// The owner's settings as last read (`owner.json`).
    owner: std::sync::Mutex<owner::OwnerControl>,
    /// Jobs stopped because the owner paused the machine and stopped its
    /// jobs: they end `lost`, not `stopped`, so retries apply.
    reclaimed: std::sync::Mutex<std::collections::HashSet<AllocId>>,
}

/// Runs an agent on `client` until `shutdown` is cancelled; running jobs are
/// then stopped and reported before it returns.
pub async fn run(
    client: async_nats::Client,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    reef_proto::node::validate_node_name(&config.name).map_err(AgentError::Config)?;
    reef_proto::job::validate_labels(&config.labels)
        .map_err(|e| AgentError::Config(format!("label {e}")))?;
    std::fs::create_dir_all(&config.data_dir).map_err(|e| AgentError::DataDir {
        path: config.data_dir.clone(),
        reason: e.to_string(),
    })?;
    // The agent's own state: nobody else's to read, sandboxed work included.
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
    }
    let node = identity::load_or_create(&config.data_dir, config.node_id)?;
    let sandbox = open_sandbox(&config, node).await?;
    let key_path = config.data_dir.join("node.key");
    let node_key =
        reef_secrets::NodeKey::load_or_create(&key_path).map_err(|e| AgentError::DataDir {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
    let records = Records::open(&config.data_dir, "allocs").map_err(|e| AgentError::DataDir {
        path: config.data_dir.join("allocs"),
        reason: e.to_string(),
    })?;
    let instances =
        Records::open(&config.data_dir, "instances").map_err(|e| AgentError::DataDir {
            path: config.data_dir.join("instances"),
            reason: e.to_string(),
        })?;
    let proxy_listener = match config.http {
        Some(addr) => {
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            Some(
                reef_proxy::ProxyListeners::bind(addr, workers).map_err(|e| {
                    AgentError::Config(format!("cannot listen for HTTP on {addr}: {e}"))
                })?,
            )
        }
        None => None,
    };
    let https_listener =
        match config.https {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                AgentError::Config(format!("cannot listen for HTTPS on {addr}: {e}"))
            })?),
            None => None,
        };
    let peer = peer::Peer::prepare(&config, node)?;
    let peer_listener = match (&peer, config.peer) {
        (Some(_), Some(addr)) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            AgentError::Config(format!(
                "cannot listen for other nodes (--peer) on {addr}: {e}"
            ))
        })?),
        _ => None,
    };
    // Redirects to HTTPS name the port clients reach it on.
    let proxy_config = reef_proxy::ProxyConfig {
        https_port: https_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(443, |addr| addr.port()),
        peer: peer.as_ref().map(|peer| peer.tls.clone()),
        ..Default::default()
    };
    let metrics_listener = metrics::bind(config.metrics).await?;
    let peer_addr = peer_listener.as_ref().and_then(|l| l.local_addr().ok());
    let proxy_addr = advertise::for_listener(peer_addr, &config).await;
    let public = doctor::Public::of(
        proxy_listener.as_ref().and_then(|l| l.local_addr().ok()),
        https_listener.as_ref().and_then(|l| l.local_addr().ok()),
        config
            .advertise
            .or(proxy_addr.map(|addr| addr.ip()))
            .or(advertise::proxy_address(
                std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                None,
                &config.nats_servers,
            )
            .await
            .map(|a| a.ip())),
    );
    let mut resources = resources::detect(&config.data_dir);
    if let Some(cpu) = config.cpu_millis {
        resources.cpu_millis = cpu;
    }
    if let Some(memory) = config.memory_bytes {
        resources.memory_bytes = memory;
    }
    if let Some(disk) = config.disk_bytes {
        resources.disk_bytes = disk;
    }
    let mut detected_gpus = gpus::detect().await;
    if let Some(offered) = &config.gpus {
        detected_gpus.retain(|gpu| offered.contains(&gpu.index));
    }
    let config_dir = config.data_dir.clone();
    let agent = Arc::new(Agent {
        js: jetstream::new(client.clone()),
        client,
        node,
        config,
        resources,
        gpus: detected_gpus,
        sandbox,
        started_at_ms: reef_proto::now_ms(),
        records,
        node_key,
        instances,
        services: service::Services::default(),
        managed: services::Managed::default(),
        router: reef_proxy::Router::new(),
        proxy_addr,
        peer_tls: peer.as_ref().map(|p| p.tls.clone()),
        public,
        registered: tokio::sync::watch::Sender::new(false),
        running: Mutex::new(HashMap::new()),
        tasks: TaskTracker::new(),
        shutdown: shutdown.clone(),
        malformed: Default::default(),
        refused: Default::default(),
        replay: Default::default(),
        owner: std::sync::Mutex::new(owner::read(&config_dir).unwrap_or_default()),
        reclaimed: Default::default(),
    });
    tracing::info!(%node, name = %agent.config.name, proxy = ?proxy_addr, sandbox = %agent.sandbox.describe(), "agent starting");
    agent
        .tasks
        .spawn(agent.clone().watch_routes().in_current_span());
    agent
        .tasks
        .spawn(agent.clone().answer_doctor().in_current_span());
    if agent.config.trust == reef_proto::node::TrustClass::Dedicated {
        // Only dedicated nodes run apps, so only they hold app data.
        agent
            .tasks
            .spawn(agent.clone().answer_backups().in_current_span());
        agent
            .tasks
            .spawn(agent.clone().watch_services().in_current_span());
    }
    if let Some(listener) = metrics_listener {
        agent.tasks.spawn(agent.clone().serve_metrics(listener));
    }
    agent.sandbox.sweep().await;
    agent.recover().await;
    tls::start(&agent, https_listener, proxy_config.clone());
    if let Some(tls) = &agent.peer_tls {
        tls.set_tunnels(Arc::new(services::TunnelEnd {
            agent: Arc::downgrade(&agent),
        }));
    }
    if let (Some(peer), Some(listener)) = (peer, peer_listener) {
        peer::start(&agent, peer, listener, proxy_config.clone());
    }

    let proxy = proxy_listener.map(|listener| {
        tracing::debug!(addr = ?listener.local_addr().ok(), "node proxy listening");
        tokio::spawn(reef_proxy::serve_per_core(
            listener,
            agent.router.clone(),
            proxy_config,
            shutdown.clone(),
        ))
    });
    let heartbeats = tokio::spawn(agent.clone().heartbeat_loop().in_current_span());
    let result = agent.clone().intake_loop().await;

    // Shutdown: executors see the token, stop their jobs and report them.
    shutdown.cancel();
    agent.tasks.close();
    let deadline = agent.config.stop_grace + Duration::from_secs(15);
    if tokio::time::timeout(deadline, agent.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some jobs did not finish stopping before the deadline");
    }
    if tokio::time::timeout(Duration::from_secs(5), agent.sandbox.close())
        .await
        .is_err()
    {
        tracing::warn!("some control groups were not removed before the deadline");
    }
    let _ = heartbeats.await;
    if let Some(proxy) = proxy {
        match proxy.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "node proxy stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "node proxy task failed"),
            Ok(Ok(())) => {}
        }
    }
    let _ = agent.client.flush().await;
    tracing::info!(
        malformed = agent.malformed.load(std::sync::atomic::Ordering::Relaxed),
        "agent stopped"
    );
    result
}

/// The node's sandbox, checked by running it once; an error says what is
/// missing, and for a dedicated node how to run without it.
async fn open_sandbox(config: &Config, node: NodeId) -> Result<sandbox::Sandbox, AgentError> {
    let refuse = |missing: String| {
        AgentError::Config(match config.trust {
            reef_proto::node::TrustClass::Contributed => format!(
                "this machine cannot run the sandbox, and a contributed node runs no work without it: {missing}"
            ),
            reef_proto::node::TrustClass::Dedicated => format!(
                "this machine cannot run the sandbox: {missing}. Fix that, or run work unconfined \
                 with --sandbox off (dedicated nodes only)"
            ),
        })
    };
    if !config.sandbox.enabled && config.trust == reef_proto::node::TrustClass::Contributed {
        return Err(AgentError::Config(
            "--sandbox off: a contributed node always runs its work in the sandbox".into(),
        ));
    }
    let sandbox =
        sandbox::Sandbox::open(config.sandbox.clone(), node, &config.data_dir).map_err(refuse)?;
    sandbox
        .self_test(&config.data_dir.join("work").join(".sandbox-test"))
        .await
        .map_err(refuse)?;
    Ok(sandbox)
}

impl Agent {
    /// Starts the executor for a recorded allocation, registering its stop token first.
    fn start(self: &Arc<Self>, alloc: AllocId) {
        let stop = CancellationToken::new();
        self.lock_running().insert(alloc, stop.clone());
        self.tasks
            .spawn(executor::run(self.clone(), alloc, stop).in_current_span());
    }

    /// Whether a job that asks for the network may run here: on a dedicated
    /// node, or where the owner allows it (`--allow-network`); without the
    /// sandbox every job shares the host's network anyway.
    fn jobs_may_use_network(&self) -> bool {
        !self.sandbox.enabled()
            || self.config.trust == reef_proto::node::TrustClass::Dedicated
            || self.sandbox.settings().allow_network
    }

    /// Reads the owner's settings; on a pause that stops jobs, stops them.
    fn follow_owner(&self) {
        let now = match owner::read(&self.config.data_dir) {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e, "the owner's settings are unreadable; keeping the last ones");
                return;
            }
        };
        let before = std::mem::replace(
            &mut *self.owner.lock().unwrap_or_else(|p| p.into_inner()),
            now,
        );
        if before.paused != now.paused {
            tracing::info!(
                paused = now.paused,
                "the machine's owner changed whether it takes work"
            );
        }
        if owner::stops_jobs(before, now) {
            let running: Vec<(AllocId, CancellationToken)> = self
                .lock_running()
                .iter()
                .map(|(id, stop)| (*id, stop.clone()))
                .collect();
            let mut reclaimed = self.reclaimed.lock().unwrap_or_else(|p| p.into_inner());
            for (alloc, stop) in running {
                tracing::info!(%alloc, "stopping a job: the machine's owner paused it");
                reclaimed.insert(alloc);
                stop.cancel();
            }
        }
    }

    fn paused(&self) -> bool {
        self.owner.lock().unwrap_or_else(|p| p.into_inner()).paused
    }

    /// Whether `alloc` was stopped because the owner took the machine back.
    fn was_reclaimed(&self, alloc: AllocId) -> bool {
        self.reclaimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&alloc)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<AllocId, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget_running(&self, alloc: AllocId) {
        self.lock_running().remove(&alloc);
    }

    /// Records (written, not synced) and reports a state change.
    async fn transition(&self, alloc: AllocId, state: AllocState) {
        match self
            .records
            .transition(alloc, state, Durability::Written)
            .await
        {
            Ok(Some(record)) => self.report(&self.records, &record).await,
            Ok(None) => {}
            Err(e) => tracing::error!(%alloc, error = %e, "could not record a state change"),
        }
    }
}
