//! The reef coordinator.
//!
//! It serves the API on `reef.api.>` (coordinators share a queue group), keeps
//! desired state in JetStream KV, places jobs with the pure [`scheduler`],
//! publishes assignments to each node's JetStream subject, and applies the
//! events agents report. Every accepted job is in KV before the API answers.
//!
//! - [`store`]: streams, buckets and typed compare-and-set access.
//! - [`scheduler`]: placement as a pure function.
//! - `cluster`: the in-memory view rebuilt from KV on start.
//! - `api`, `dispatch`, `events`: the handlers.
//! - [`certs`]: TLS certificates, from files and over ACME (the leader's manager).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod api;
mod apps;
pub mod certs;
mod cluster;
mod converge;
mod departures;
mod dispatch;
mod domains;
mod drain;
pub mod error;
mod events;
#[cfg(test)]
mod fixtures;
mod intake;
mod join;
mod leader;
mod lifecycle;
mod liveness;
mod peers;
mod reconcile;
mod relay;
mod replication;
mod rolling;
mod rollout;
mod routes;
pub mod scheduler;
mod secrets;
mod servers;
pub mod store;
mod transitions;
mod trust;
mod users;
mod verdict;

pub use error::CoordinatorError;
pub use store::StoreConfig;

use async_nats::jetstream::{self, consumer};
use cluster::Cluster;
use futures::StreamExt;
use reef_proto::subjects;
use std::collections::{BTreeSet, HashSet};
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
        }
    }
}

pub(crate) struct Coordinator {
    client: async_nats::Client,
    store: store::Store,
    cluster: Cluster,
    /// Nodes heard in heartbeats but not (yet) in this coordinator's view.
    unknown_nodes: HashSet<reef_proto::NodeId>,
    /// Each node's credential key, to know whose connection closed.
    node_keys: std::collections::HashMap<String, reef_proto::NodeId>,
    /// Allocations recorded in KV whose assignment may not be in the stream yet.
    unsent: BTreeSet<reef_proto::AllocId>,
    /// Commands for nodes that could not be published yet: (node, message id, command).
    queued: Vec<(reef_proto::NodeId, String, reef_proto::agent::AgentCommand)>,
    /// Messages that failed to decode or validate, dropped.
    malformed: u64,
    cluster_key: Option<std::sync::Arc<reef_secrets::ClusterKey>>,
    /// When this coordinator started leading: nodes never heard since then
    /// count as silent from this moment.
    started: std::time::Instant,
    /// The prefix of this coordinator's own API subject, where followers relay requests.
    relay_prefix: String,
    /// Assignments published and not yet acknowledged by JetStream.
    acks: tokio::task::JoinSet<(reef_proto::AllocId, Result<(), String>)>,
    /// Shared with this term's certificate manager.
    certs: certs::Handle,
    /// The routes bucket as this leader wrote it.
    routes: routes::RouteBook,
    /// The reconciler's memory between passes.
    converger: converge::Converger,
    /// The key node credentials must be signed by (`Config::node_issuer`).
    node_issuer: Option<String>,
    authority: Option<std::sync::Arc<Authority>>,
    /// When join tokens were last swept.
    token_sweep: std::time::Instant,
    /// When the replicas of the streams were last matched to the servers.
    replicas_sized: Option<std::time::Instant>,
    /// How to make streams and buckets again if they vanish.
    store_config: StoreConfig,
    /// The sequence number of the last command sealed; starts from the
    /// clock in microseconds at each term, so numbers stay unique across
    /// leaders.
    command_seq: u64,
}

/// Everything a coordinator keeps across its terms as leader.
struct Shared {
    client: async_nats::Client,
    store: store::Store,
    config: Config,
    me: leader::Identity,
    cluster_key: Option<std::sync::Arc<reef_secrets::ClusterKey>>,
    shutdown: CancellationToken,
}

/// How a term as leader ended.
enum TermEnd {
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
            reef_secrets::ClusterKey::load_or_create(path).map_err(|e| {
                CoordinatorError::Setup {
                    what: "the cluster key".into(),
                    reason: e.to_string(),
                }
            })?,
        )),
        None => None,
    };
    let js = jetstream::new(client.clone());
    let store = store::ensure(js, &config.store).await?;
    let mut api = client
        .queue_subscribe(
            format!("{}.>", subjects::API_PREFIX),
            subjects::API_QUEUE_GROUP.into(),
        )
        .await
        .map_err(sub_err)?;
    let me = leader::Identity {
        id: uuid::Uuid::now_v7().to_string(),
        name: config.name.clone(),
    };
    tracing::info!(id = %me.id, name = %me.name, "coordinator ready");
    let shared = Shared {
        client,
        store,
        config,
        me,
        cluster_key,
        shutdown,
    };
    let relays = TaskTracker::new();
    let (leader_tx, leader_rx) = watch::channel(None::<String>);
    let mut election = leader::Election::new(
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
        match lead(&shared, lease, &mut api).await {
            Ok(TermEnd::Shutdown) => break Ok(()),
            Ok(TermEnd::Deposed) => leader_tx.send_replace(None),
            Err(e) => break Err(e),
        };
    };
    // Let queued requests in other coordinators' hands be answered there.
    let _ = api.unsubscribe().await;
    relays.close();
    relays.wait().await;
    tracing::info!("coordinator stopped");
    result
}

fn sub_err(e: async_nats::SubscribeError) -> CoordinatorError {
    CoordinatorError::Subscription(e.to_string())
}

/// Follows the leader until this coordinator takes the lease (Some) or shuts down (None).
async fn follow(
    shared: &Shared,
    election: &mut leader::Election,
    api: &mut async_nats::Subscriber,
    relays: &TaskTracker,
    leader_tx: &watch::Sender<Option<String>>,
    leader_rx: &watch::Receiver<Option<String>>,
) -> Option<leader::Lease> {
    let mut look = tokio::time::interval(shared.config.leader_lease / 6);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut departures = departures::follow(shared.config.authority.as_deref()).await;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return None,
            Some(msg) = api.next() => {
                relays.spawn(relay::relay(shared.client.clone(), leader_rx.clone(), msg));
            }
            Some(msg) = next_departure(departures.as_mut()) => {
                if let Some(departure) = departures::parse(&msg.payload) {
                    if departures::closed_by_client(&departure.reason)
                        && election.connection_closed(&departure.server.id, departure.client.id)
                    {
                        look.reset_immediately();
                    }
                }
            }
            _ = look.tick() => match election.look().await {
                Ok(leader::Look::Lead(lease)) => return Some(*lease),
                Ok(leader::Look::Follow) => {
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
                Err(e) => tracing::warn!(error = %e, "could not read the leader lease"),
            },
        }
    }
}

/// One term as leader: rebuild the view from KV, then schedule, apply events
/// and serve the API until shutdown or until the lease is lost.
async fn lead(
    shared: &Shared,
    lease: leader::Lease,
    api: &mut async_nats::Subscriber,
) -> Result<TermEnd, CoordinatorError> {
    tracing::info!(name = %shared.me.name, "leading");
    let term = CancellationToken::new();
    let deposed = CancellationToken::new();
    let renewer = tokio::spawn(keep_lease(lease, term.clone(), deposed.clone()));
    let result = lead_term(shared, api, &deposed).await;
    term.cancel();
    if let Err(e) = renewer.await {
        tracing::warn!(error = %e, "the lease renewal task failed");
    }
    match &result {
        Ok(TermEnd::Deposed) => tracing::warn!("no longer the leader; following again"),
        Ok(TermEnd::Shutdown) => {}
        Err(e) => tracing::error!(error = %e, "leading failed"),
    }
    result
}

/// Renews the lease until the term ends (then releases it) or the lease is lost
/// (then cancels `deposed`).
async fn keep_lease(mut lease: leader::Lease, term: CancellationToken, deposed: CancellationToken) {
    let mut renew = tokio::time::interval(lease.renew_every());
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.tick().await;
    loop {
        tokio::select! {
            _ = term.cancelled() => {
                if lease.valid() {
                    lease.release().await;
                }
                return;
            }
            _ = renew.tick() => {
                if let Err(e) = lease.renew().await {
                    tracing::warn!(error = %e, "leader lease lost");
                    deposed.cancel();
                    return;
                }
            }
        }
    }
}

async fn lead_term(
    shared: &Shared,
    api: &mut async_nats::Subscriber,
    deposed: &CancellationToken,
) -> Result<TermEnd, CoordinatorError> {
    let relay_prefix = subjects::coordinator_api_prefix(&shared.me.id);
    let mut relayed = shared
        .client
        .subscribe(format!("{relay_prefix}.>"))
        .await
        .map_err(sub_err)?;
    let mut heartbeats = shared
        .client
        .subscribe(subjects::HEARTBEAT_WILDCARD)
        .await
        .map_err(sub_err)?;
    let mut coordinator = Coordinator {
        client: shared.client.clone(),
        store: shared.store.clone(),
        cluster: Cluster::new(shared.config.node_grace),
        unknown_nodes: HashSet::new(),
        node_keys: Default::default(),
        unsent: BTreeSet::new(),
        queued: Vec::new(),
        malformed: 0,
        cluster_key: shared.cluster_key.clone(),
        started: std::time::Instant::now(),
        relay_prefix,
        node_issuer: shared.config.node_issuer.clone(),
        authority: shared.config.authority.clone(),
        token_sweep: std::time::Instant::now(),
        replicas_sized: None,
        store_config: shared.config.store.clone(),
        command_seq: reef_proto::now_ms().saturating_mul(1000),
        acks: Default::default(),
        certs: certs::Handle::default(),
        routes: routes::RouteBook::default(),
        converger: converge::Converger::new(),
    };
    let end = tokio::select! {
        loaded = coordinator.load() => { loaded?; None }
        _ = deposed.cancelled() => Some(TermEnd::Deposed),
        _ = shared.shutdown.cancelled() => Some(TermEnd::Shutdown),
    };
    let end = match end {
        Some(end) => end,
        None => {
            let cert_manager = certs::Manager::start(
                certs::Settings {
                    store: shared.store.clone(),
                    cluster_key: shared.cluster_key.clone(),
                    acme: shared.config.acme.clone(),
                },
                coordinator.certs.clone(),
                &shared.shutdown,
            );
            let mut departures = departures::follow(coordinator.authority.as_deref()).await;
            coordinator.load_node_keys().await;
            let served = coordinator
                .serve_term(
                    shared,
                    api,
                    &mut relayed,
                    &mut heartbeats,
                    departures.as_mut(),
                    deposed,
                )
                .await;
            if let Some(mut departures) = departures {
                let _ = departures.unsubscribe().await;
            }
            cert_manager.stop().await;
            served?
        }
    };
    tracing::info!(malformed = coordinator.malformed, "term as leader over");
    let _ = relayed.unsubscribe().await;
    let _ = heartbeats.unsubscribe().await;
    Ok(end)
}

/// The next disconnect advisory; never, without a subscription.
async fn next_departure(
    departures: Option<&mut async_nats::Subscriber>,
) -> Option<async_nats::Message> {
    match departures {
        Some(subscriber) => subscriber.next().await,
        None => std::future::pending().await,
    }
}

impl Coordinator {
    /// The leader's loop.
    async fn serve_term(
        &mut self,
        shared: &Shared,
        api: &mut async_nats::Subscriber,
        relayed: &mut async_nats::Subscriber,
        heartbeats: &mut async_nats::Subscriber,
        mut departures: Option<&mut async_nats::Subscriber>,
        deposed: &CancellationToken,
    ) -> Result<TermEnd, CoordinatorError> {
        let mut events = match self.reopen_events(shared, deposed).await {
            Ok(events) => events,
            Err(end) => return Ok(end),
        };
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shared.shutdown.cancelled() => return Ok(TermEnd::Shutdown),
                _ = deposed.cancelled() => return Ok(TermEnd::Deposed),
                Some(msg) = api.next() => {
                    let batch = intake::batch(msg, api);
                    self.handle_api_batch(batch).await;
                }
                Some(msg) = relayed.next() => {
                    let batch = intake::batch(msg, relayed);
                    self.handle_api_batch(batch).await;
                }
                Some(msg) = heartbeats.next() => self.handle_heartbeat(msg),
                Some(msg) = next_departure(departures.as_deref_mut()) => self.handle_departure(msg).await,
                msg = events.next() => match msg {
                    Some(Ok(msg)) => self.handle_event(msg).await,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "event consumer error");
                        if self.events_gone().await {
                            tracing::warn!("the event consumer or its stream is gone; making them again");
                            match self.reopen_events(shared, deposed).await {
                                Ok(reopened) => events = reopened,
                                Err(end) => return Ok(end),
                            }
                        }
                    }
                    None => {
                        tracing::warn!("event consumer ended; re-opening it");
                        match self.reopen_events(shared, deposed).await {
                            Ok(reopened) => events = reopened,
                            Err(end) => return Ok(end),
                        }
                    }
                },
                Some(joined) = self.acks.join_next(), if !self.acks.is_empty() => match joined {
                    Ok((alloc, result)) => self.acked(alloc, result),
                    Err(e) => tracing::warn!(error = %e, "waiting for an assignment's acknowledgement failed"),
                },
                _ = tick.tick() => self.tick().await,
            }
        }
    }

    /// Rebuilds the in-memory view from the buckets, and re-publishes any
    /// assignment that may not have reached its stream before a crash.
    async fn load(&mut self) -> Result<(), CoordinatorError> {
        use reef_proto::alloc::{AllocState, Allocation};
        use reef_proto::job::{JobRecord, JobState};
        use reef_proto::node::NodeRecord;
        for node in store::all::<NodeRecord>(&self.store.nodes).await? {
            self.cluster.upsert_node(node);
        }
        let jobs = store::all::<JobRecord>(&self.store.jobs).await?;
        let current: std::collections::HashMap<_, _> =
            jobs.iter().map(|job| (job.id, job.alloc)).collect();
        let mut strays = Vec::new();
        for alloc in store::all::<Allocation>(&self.store.allocs).await? {
            if alloc.state.is_terminal() {
                continue;
            }
            if current.get(&alloc.job) != Some(&Some(alloc.id)) {
                // Written before its job's record, which never followed
                // (the leader stopped or a write failed in between).
                strays.push(alloc.id);
                continue;
            }
            if alloc.state == AllocState::Assigned {
                // Its assignment may never have reached the stream.
                self.unsent.insert(alloc.id);
            }
            self.cluster.commit(alloc);
        }
        for id in strays {
            tracing::info!(alloc = %id, "withdrawing an allocation no job points at");
            self.withdraw(id, "withdrawn: no job points at it").await?;
        }
        let replicated = replication::load(&jobs);
        self.cluster.replica_nodes = replicated.groups;
        self.cluster.standing = replicated.standing;
        for job in jobs {
            if let JobState::Pending { reason } = job.state {
                self.cluster.pending.insert(
                    job.id,
                    cluster::Pending {
                        group: job.replica.map(|r| r.group),
                        spec: job.spec,
                        reason,
                        avoid: job.lost_on.into_iter().collect(),
                    },
                );
            }
        }
        let ended = self.load_instances().await?;
        self.converge_load(ended).await?;
        self.rebuild_routes().await;
        self.retry_unsent().await;
        tracing::info!(
            nodes = self.cluster.nodes.len(),
            live = self.cluster.live.len(),
            pending = self.cluster.pending.len(),
            "state loaded"
        );
        Ok(())
    }

    /// Whether the events stream or the coordinators' consumer of it no
    /// longer exists (someone deleted them).
    async fn events_gone(&self) -> bool {
        let Ok(stream) = self.store.js.get_stream(subjects::EVENTS_STREAM).await else {
            return true;
        };
        stream
            .consumer_info(subjects::EVENTS_CONSUMER)
            .await
            .is_err()
    }

    /// Opens the event consumer; if that fails, makes every missing stream
    /// and bucket again and retries each second, rather than give up the
    /// term. Ends with the term if it is shut down or deposed meanwhile.
    async fn reopen_events(
        &mut self,
        shared: &Shared,
        deposed: &CancellationToken,
    ) -> Result<consumer::pull::Stream, TermEnd> {
        loop {
            match self.event_messages().await {
                Ok(events) => return Ok(events),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the event consumer; repairing the store");
                    self.repair_store(&shared.config.store).await;
                }
            }
            tokio::select! {
                _ = shared.shutdown.cancelled() => return Err(TermEnd::Shutdown),
                _ = deposed.cancelled() => return Err(TermEnd::Deposed),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Creates every stream and bucket that is missing.
    pub(crate) async fn repair_store(&mut self, config: &StoreConfig) {
        match store::ensure(self.store.js.clone(), config).await {
            Ok(store) => self.store = store,
            Err(e) => tracing::warn!(error = %e, "the store could not be repaired yet"),
        }
    }

    async fn event_messages(&self) -> Result<consumer::pull::Stream, CoordinatorError> {
        let setup = |e: &dyn std::fmt::Display| CoordinatorError::Setup {
            what: format!("consumer {}", subjects::EVENTS_CONSUMER),
            reason: e.to_string(),
        };
        let stream = self
            .store
            .js
            .get_stream(subjects::EVENTS_STREAM)
            .await
            .map_err(|e| setup(&e))?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                subjects::EVENTS_CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(subjects::EVENTS_CONSUMER.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(10),
                    max_deliver: 20,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| setup(&e))?;
        consumer.messages().await.map_err(|e| setup(&e))
    }

    fn handle_heartbeat(&mut self, msg: async_nats::Message) {
        let hb = match reef_proto::decode::<reef_proto::node::Heartbeat>(&msg.payload) {
            Ok(hb) => hb,
            Err(e) => {
                self.malformed += 1;
                tracing::debug!(subject = %msg.subject, error = %e, "dropping malformed heartbeat");
                return;
            }
        };
        if msg.subject.as_str() != subjects::heartbeat(hb.node) {
            self.malformed += 1;
            tracing::debug!(subject = %msg.subject, "dropping heartbeat sent on another node's subject");
            return;
        }
        if !self
            .cluster
            .heard_from(hb.node, std::time::Instant::now(), reef_proto::now_ms())
        {
            self.unknown_nodes.insert(hb.node);
        } else if let Some(entry) = self.cluster.nodes.get_mut(&hb.node) {
            entry.running = hb.running;
            entry.paused = hb.paused;
        }
    }

    /// Periodic work: learn nodes registered elsewhere, place pending jobs.
    async fn tick(&mut self) {
        for node in std::mem::take(&mut self.unknown_nodes) {
            match store::get::<reef_proto::node::NodeRecord>(&self.store.nodes, &node.to_string())
                .await
            {
                Ok(Some((record, _))) => {
                    self.cluster.upsert_node(record);
                    self.cluster
                        .heard_from(node, std::time::Instant::now(), reef_proto::now_ms());
                }
                Ok(None) => tracing::debug!(%node, "heartbeat from an unregistered node"),
                Err(e) => tracing::warn!(%node, error = %e, "could not load node"),
            }
        }
        self.retry_unsent().await;
        self.retry_queued().await;
        self.retry_routes().await;
        self.check_liveness().await;
        self.advance_drains().await;
        self.advance_rollouts().await;
        self.converge_tick().await;
        self.sweep_tokens().await;
        self.size_replicas().await;
        self.place_pending(true).await;
    }
}
