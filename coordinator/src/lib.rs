//! The reef coordinator.
//!
//! It serves the API on `reef.api.>` (coordinators share a queue group), keeps
//! desired state in JetStream KV, places jobs with the pure scheduler,
//! publishes assignments to each node's JetStream subject, and applies the
//! events agents report. Every accepted job is in KV before the API answers.
//!
//! The tree shows the layers:
//!
//! - `plan`: decisions as pure functions of plain data (placement, the
//!   reconciler, what an event does, rollouts, node loss, drain steps, the
//!   lease, retention), tested without NATS.
//! - `state`: what the leader keeps in memory between messages (the view
//!   of the cluster, the routes it wrote, the reconciler's memory). Only
//!   its own methods change it.
//! - [`store`]: the streams and buckets, each bucket behind a handle typed
//!   by what it stores.
//! - `drive`: the leader's I/O: its loop and the drivers that read, call a
//!   decision from `plan`, then write and publish.
//! - `api`: the API handlers, read-only verbs answered by any coordinator.
//! - [`certs`]: TLS certificates, from files and over ACME (the leader's manager).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod api;
pub mod certs;
mod cluster_events;
mod drive;
pub mod error;
mod journal;
mod metrics;
mod plan;
mod state;
pub mod store;
mod ui;

pub use error::CoordinatorError;
pub use plan::scheduler;
pub use store::StoreConfig;

use crate::error::Report;
use futures::StreamExt;
use reef_proto::subjects;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Coordinator settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub store: StoreConfig,
    /// A node not heard from for this long is down and gets no new work.
    pub node_grace: Duration,
    /// The file holding the cluster key that encrypts secrets (created if
    /// missing). None: this coordinator refuses secret operations.
    pub secrets_key: Option<std::path::PathBuf>,
    /// This coordinator's name, shown as the leader's name.
    pub name: String,
    /// How long the leader lease lasts without renewal: a follower takes over
    /// once the leader has been silent this long.
    pub leader_lease: Duration,
    /// The ACME CA the leader orders app certificates from (None: ACME off;
    /// certificates added from files are served either way).
    pub acme: Option<reef_acme::AcmeConfig>,
    /// The key that signs node credentials (the account's signing key). When
    /// set, a node's registration must carry a credential it signed for
    /// that node, and the node's trust class is the credential's.
    pub node_issuer: Option<String>,
    /// The cluster's keys and a system-account connection, for issuing
    /// user credentials and revoking users and nodes (None: those verbs are
    /// refused with the reason).
    pub authority: Option<std::sync::Arc<Authority>>,
    /// How long finished jobs, allocations and instances are kept.
    pub retain_jobs: Duration,
    /// How many releases of each app are kept, besides those still needed.
    pub keep_releases: u32,
    /// Where `GET /metrics` is served (None: nowhere).
    pub metrics: Option<std::net::SocketAddr>,
    /// Where the web dashboard is served (None: nowhere).
    pub ui: Option<std::net::SocketAddr>,
    /// How long a sign-in link from `reef ui` stays valid (at most 10 minutes).
    pub ui_link_ttl: Duration,
}

/// What lets a coordinator issue and revoke credentials.
pub struct Authority {
    /// The cluster directory, with its keys.
    pub dir: reef_trust::ClusterDir,
    /// A connection in the NATS system account, which takes account updates.
    pub system: async_nats::Client,
    /// Signs every command to a node.
    pub assign: reef_trust::AssignmentKey,
    /// The file of the key that encrypts secrets, handed to a server that
    /// joins with the cluster directory (None: servers cannot join here).
    pub cluster_key: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("dir", &self.dir.dir)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            node_grace: Duration::from_secs(3),
            secrets_key: None,
            name: "coordinator".into(),
            leader_lease: Duration::from_secs(3),
            acme: None,
            node_issuer: None,
            authority: None,
            retain_jobs: Duration::from_secs(7 * 24 * 3600),
            keep_releases: 10,
            metrics: None,
            ui: None,
            ui_link_ttl: Duration::from_secs(300),
        }
    }
}
/// Everything a coordinator keeps across its terms as leader.
pub(crate) struct Shared {
    /// Answers the read-only verbs, leading or not.
    pub(crate) reads: api::reads::Reads,
    /// Writes the audit log, leading or not.
    pub(crate) audit: api::audit::Audit,
    pub(crate) metrics: metrics::Metrics,
    /// Where the leader records the cluster's events.
    pub(crate) events: cluster_events::ClusterEvents,
    pub(crate) client: async_nats::Client,
    pub(crate) store: store::Store,
    pub(crate) config: Config,
    pub(crate) me: drive::election::Identity,
    pub(crate) cluster_key: Option<std::sync::Arc<reef_secrets::ClusterKey>>,
    pub(crate) shutdown: CancellationToken,
}

/// How a term as leader ended.
pub(crate) enum TermEnd {
    Shutdown,
    Deposed,
}

/// Runs a coordinator on `client` until `shutdown` is cancelled: it serves the
/// API all along, and schedules while it holds the leader lease.
pub async fn run(
    client: async_nats::Client,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    let cluster_key = match &config.secrets_key {
        Some(path) => Some(std::sync::Arc::new(
            reef_secrets::ClusterKey::load_or_create(path).map_err(CoordinatorError::ClusterKey)?,
        )),
        None => None,
    };
    let metrics_listener = match config.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| CoordinatorError::Listen { addr, source })?,
        ),
        None => None,
    };
    let ui_listener = match config.ui {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| CoordinatorError::Listen { addr, source })?,
        ),
        None => None,
    };
    let js = async_nats::jetstream::new(client.clone());
    let store = store::ensure(js, &config.store).await?;
    let links =
        ui::links::Links::open(&store.js, config.store.replicas, config.ui_link_ttl).await?;
    let ui_base = match &ui_listener {
        Some(listener) => Some(format!(
            "http://{}",
            listener
                .local_addr()
                .map_err(|source| CoordinatorError::Listen {
                    addr: config.ui.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
                    source
                })?
        )),
        None => None,
    };
    let api_subject = format!("{}.>", subjects::API_PREFIX);
    let mut api = client
        .queue_subscribe(api_subject.clone(), subjects::API_QUEUE_GROUP.into())
        .await
        .map_err(|e| sub_err(&api_subject, e))?;
    let me = drive::election::Identity {
        id: uuid::Uuid::now_v7().to_string(),
        name: config.name.clone(),
    };
    tracing::info!(id = %me.id, name = %me.name, "coordinator ready");
    let audit = api::audit::Audit::start(store.js.clone(), &config.name, shutdown.clone());
    let metrics = metrics::Metrics::new(metrics_listener.is_some());
    metrics.audit_dropped(audit.dropped());
    let reads = api::reads::Reads::new(
        client.clone(),
        store.clone(),
        config.acme.is_some(),
        config.retain_jobs,
        audit.clone(),
        metrics.clone(),
        (links.clone(), ui_base),
    );
    let endpoint = TaskTracker::new();
    if let Some(listener) = metrics_listener {
        let render = metrics.clone();
        endpoint.spawn(reef_proxy::exposition::serve_metrics(
            listener,
            std::sync::Arc::new(move || render.render()),
            shutdown.clone(),
        ));
    }
    if let Some(listener) = ui_listener {
        endpoint.spawn(ui::serve(
            listener,
            ui::Parts {
                client: client.clone(),
                js: store.js.clone(),
                links,
                audit: audit.clone(),
                members: store.members.clone(),
                issuer: config.node_issuer.clone(),
            },
            shutdown.clone(),
        ));
    }
    endpoint.close();
    let events = cluster_events::ClusterEvents::start(store.js.clone(), shutdown.clone());
    let shared = Shared {
        reads,
        audit,
        metrics,
        events,
        client,
        store,
        config,
        me,
        cluster_key,
        shutdown,
    };
    let relays = TaskTracker::new();
    let (leader_tx, leader_rx) = watch::channel(None::<String>);
    let mut election = drive::election::Election::new(
        shared.store.leader.clone(),
        shared.client.clone(),
        shared.me.clone(),
        shared.config.leader_lease,
    );
    let result = loop {
        let lease = match follow(
            &shared,
            &mut election,
            &mut api,
            &relays,
            &leader_tx,
            &leader_rx,
        )
        .await
        {
            Some(lease) => lease,
            None => break Ok(()),
        };
        leader_tx.send_replace(Some(shared.me.id.clone()));
        match drive::term::lead(&shared, lease, &mut api).await {
            Ok(TermEnd::Shutdown) => break Ok(()),
            Ok(TermEnd::Deposed) => leader_tx.send_replace(None),
            Err(e) => break Err(e),
        };
    };
    // Let queued requests in other coordinators' hands be answered there.
    let _ = api.unsubscribe().await;
    relays.close();
    relays.wait().await;
    shared.reads.close().await;
    shared.audit.close().await;
    shared.events.close().await;
    endpoint.wait().await;
    tracing::info!("coordinator stopped");
    result
}

/// A subscription to `subject` failed.
pub(crate) fn sub_err(subject: &str, e: async_nats::SubscribeError) -> CoordinatorError {
    CoordinatorError::Subscription {
        subject: subject.to_string(),
        source: e,
    }
}

/// Follows the leader until this coordinator takes the lease (Some) or shuts down (None).
async fn follow(
    shared: &Shared,
    election: &mut drive::election::Election,
    api: &mut async_nats::Subscriber,
    relays: &TaskTracker,
    leader_tx: &watch::Sender<Option<String>>,
    leader_rx: &watch::Receiver<Option<String>>,
) -> Option<drive::election::Lease> {
    let mut look = tokio::time::interval(shared.config.leader_lease / 6);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut departures = drive::departures::follow(shared.config.authority.as_deref()).await;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return None,
            Some(msg) = api.next() => {
                let tail = api::tail(&msg.subject).to_string();
                if api::reads::is_read(&tail) {
                    shared.reads.spawn(msg, tail);
                } else {
                    relays.spawn(api::relay::relay(shared.client.clone(), leader_rx.clone(), msg));
                }
            }
            Some(msg) = drive::departures::next(departures.as_mut()) => {
                if let Some(departure) = drive::departures::parse(&msg.payload) {
                    if drive::departures::closed_by_client(&departure.reason)
                        && election.connection_closed(&departure.server.id, departure.client.id)
                    {
                        look.reset_immediately();
                    }
                }
            }
            _ = look.tick() => match election.look().await {
                Ok(drive::election::Look::Lead(lease)) => return Some(*lease),
                Ok(drive::election::Look::Follow) => {
                    let holder = election.holder().map(|l| l.coordinator.clone());
                    leader_tx.send_if_modified(|current| {
                        let changed = *current != holder;
                        if changed {
                            tracing::info!(leader = ?election.holder().map(|l| &l.name), "following");
                            current.clone_from(&holder);
                        }
                        changed
                    });
                }
                Err(e) => tracing::warn!(error = %Report(&e), "could not read the leader lease"),
            },
        }
    }
}
