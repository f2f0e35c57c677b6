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

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod api;
mod apps;
mod cluster;
mod dispatch;
pub mod error;
mod events;
mod lifecycle;
mod liveness;
mod rollout;
pub mod scheduler;
mod secrets;
pub mod store;

pub use error::CoordinatorError;
pub use store::StoreConfig;

use async_nats::jetstream::{self, consumer};
use cluster::Cluster;
use futures::StreamExt;
use reef_proto::subjects;
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Coordinator settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub store: StoreConfig,
    /// A node not heard from for this long is down and gets no new work.
    pub node_grace: Duration,
    /// The file holding the cluster key that encrypts secrets (created if
    /// missing). None: this coordinator refuses secret operations.
    pub secrets_key: Option<std::path::PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            node_grace: Duration::from_secs(3),
            secrets_key: None,
        }
    }
}

pub(crate) struct Coordinator {
    client: async_nats::Client,
    store: store::Store,
    cluster: Cluster,
    /// Nodes heard in heartbeats but not (yet) in this coordinator's view.
    unknown_nodes: HashSet<reef_proto::NodeId>,
    /// Allocations recorded in KV whose assignment may not be in the stream yet.
    unsent: BTreeSet<reef_proto::AllocId>,
    /// Commands for nodes that could not be published yet: (node, message id, command).
    queued: Vec<(reef_proto::NodeId, String, reef_proto::agent::AgentCommand)>,
    /// Messages that failed to decode or validate, dropped.
    malformed: u64,
    cluster_key: Option<reef_secrets::ClusterKey>,
    /// When this coordinator started: nodes never heard since then count as
    /// silent from this moment.
    started: std::time::Instant,
}

/// Runs a coordinator on `client` until `shutdown` is cancelled.
pub async fn run(
    client: async_nats::Client,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    let cluster_key = match &config.secrets_key {
        Some(path) => Some(reef_secrets::ClusterKey::load_or_create(path).map_err(|e| {
            CoordinatorError::Setup {
                what: "the cluster key".into(),
                reason: e.to_string(),
            }
        })?),
        None => None,
    };
    let js = jetstream::new(client.clone());
    let store = store::ensure(js, &config.store).await?;
    let sub_err = |e: async_nats::SubscribeError| CoordinatorError::Subscription(e.to_string());
    let mut api = client
        .queue_subscribe(
            format!("{}.>", subjects::API_PREFIX),
            subjects::API_QUEUE_GROUP.into(),
        )
        .await
        .map_err(sub_err)?;
    let mut heartbeats = client
        .subscribe(subjects::HEARTBEAT_WILDCARD)
        .await
        .map_err(sub_err)?;
    let mut coordinator = Coordinator {
        client,
        store,
        cluster: Cluster::new(config.node_grace),
        unknown_nodes: HashSet::new(),
        unsent: BTreeSet::new(),
        queued: Vec::new(),
        malformed: 0,
        cluster_key,
        started: std::time::Instant::now(),
    };
    coordinator.load().await?;
    let mut events = coordinator.event_messages().await?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!("coordinator ready");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(msg) = api.next() => coordinator.handle_api(msg).await,
            Some(msg) = heartbeats.next() => coordinator.handle_heartbeat(msg),
            msg = events.next() => match msg {
                Some(Ok(msg)) => coordinator.handle_event(msg).await,
                Some(Err(e)) => tracing::warn!(error = %e, "event consumer error"),
                None => {
                    tracing::warn!("event consumer ended; re-opening it");
                    events = coordinator.event_messages().await?;
                }
            },
            _ = tick.tick() => coordinator.tick().await,
        }
    }
    tracing::info!(malformed = coordinator.malformed, "coordinator stopping");
    // Let queued requests in other coordinators' hands be answered there.
    let _ = api.unsubscribe().await;
    let _ = heartbeats.unsubscribe().await;
    Ok(())
}

impl Coordinator {
    /// Rebuilds the in-memory view from the buckets, and re-publishes any
    /// assignment that may not have reached its stream before a crash.
    async fn load(&mut self) -> Result<(), CoordinatorError> {
        use reef_proto::alloc::{AllocState, Allocation};
        use reef_proto::job::{JobRecord, JobState};
        use reef_proto::node::NodeRecord;
        for node in store::all::<NodeRecord>(&self.store.nodes).await? {
            self.cluster.upsert_node(node);
        }
        for alloc in store::all::<Allocation>(&self.store.allocs).await? {
            if alloc.state.is_terminal() {
                continue;
            }
            if alloc.state == AllocState::Assigned {
                // Its assignment may never have reached the stream.
                self.unsent.insert(alloc.id);
            }
            self.cluster.commit(alloc);
        }
        for job in store::all::<JobRecord>(&self.store.jobs).await? {
            if let JobState::Pending { reason } = job.state {
                self.cluster.pending.insert(
                    job.id,
                    cluster::Pending {
                        spec: job.spec,
                        reason,
                    },
                );
            }
        }
        self.load_instances().await?;
        self.retry_unsent().await;
        tracing::info!(
            nodes = self.cluster.nodes.len(),
            live = self.cluster.live.len(),
            pending = self.cluster.pending.len(),
            "state loaded"
        );
        Ok(())
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
        self.check_liveness().await;
        self.place_pending(true).await;
    }
}
