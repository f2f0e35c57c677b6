//! One term as leader: the view rebuilt from the buckets, then the loop
//! that takes API calls, events, heartbeats, departures and the 500 ms
//! tick, until shutdown or until the lease is lost.

use super::{departures, election, Coordinator};
use crate::api;
use crate::certs;
use crate::error::{BoxError, CoordinatorError, Report};
use crate::state::cluster::Cluster;
use crate::state::cluster::Heard;
use crate::sub_err;
use crate::Shared;
use crate::StoreConfig;
use crate::TermEnd;
use async_nats::jetstream::consumer;
use futures::StreamExt;
use reef_proto::subjects;
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One term as leader: rebuild the view from KV, then schedule, apply events
/// and serve the API until shutdown or until the lease is lost.
pub(crate) async fn lead(
    shared: &Shared,
    lease: election::Lease,
    api: &mut async_nats::Subscriber,
) -> Result<TermEnd, CoordinatorError> {
    tracing::info!(name = %shared.me.name, "leading");
    let term = CancellationToken::new();
    let deposed = CancellationToken::new();
    let renewer = tokio::spawn(keep_lease(lease, term.clone(), deposed.clone()));
    shared.metrics.leading();
    let result = lead_term(shared, api, &deposed).await;
    shared.metrics.following();
    term.cancel();
    if let Err(e) = renewer.await {
        tracing::warn!(error = %Report(&e), "the lease renewal task failed");
    }
    match &result {
        Ok(TermEnd::Deposed) => tracing::warn!("no longer the leader; following again"),
        Ok(TermEnd::Shutdown) => {}
        Err(e) => tracing::error!(error = %Report(&e), "leading failed"),
    }
    result
}

/// Renews the lease until the term ends (then releases it) or the lease is lost
/// (then cancels `deposed`).
async fn keep_lease(
    mut lease: election::Lease,
    term: CancellationToken,
    deposed: CancellationToken,
) {
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
                    tracing::warn!(error = %Report(&e), "leader lease lost");
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
    let relay_subject = format!("{relay_prefix}.>");
    let mut relayed = shared
        .client
        .subscribe(relay_subject.clone())
        .await
        .map_err(|e| sub_err(&relay_subject, e))?;
    let mut heartbeats = shared
        .client
        .subscribe(subjects::HEARTBEAT_WILDCARD)
        .await
        .map_err(|e| sub_err(subjects::HEARTBEAT_WILDCARD, e))?;
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
        backups: None,
        routes: crate::state::route_book::RouteBook::default(),
        converger: crate::state::converger::Converger::new(),
        drain_stops: HashSet::new(),
        reads: shared.reads.clone(),
        audit: shared.audit.clone(),
        metrics: shared.metrics.clone(),
        events: shared.events.clone(),
        node_statuses: Default::default(),
        crons: Default::default(),
        checkpointed: None,
        retention: super::retention::Retention::new(crate::plan::retention::Policy {
            retain: shared.config.retain_jobs,
            keep_releases: shared.config.keep_releases,
        }),
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
                    events: shared.events.clone(),
                },
                coordinator.certs.clone(),
                &shared.shutdown,
            );
            let notifier = super::notify::Notifier::start(shared.store.clone(), &shared.shutdown);
            let backups = super::backups::Backups::start(
                shared.store.clone(),
                coordinator.client.clone(),
                shared.cluster_key.clone(),
                &shared.shutdown,
            );
            coordinator.backups = Some(backups.sender());
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
            notifier.stop().await;
            coordinator.backups = None;
            backups.stop().await;
            coordinator.retention.stop().await;
            if let Ok(TermEnd::Shutdown) = served {
                // Still holding the lease: the next leader starts from here
                // with nothing to read since.
                let wrote = coordinator.write_checkpoint();
                match tokio::time::timeout(Duration::from_secs(2), wrote).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %Report(&e), "could not write the checkpoint at shutdown")
                    }
                    Err(_) => tracing::warn!("writing the checkpoint at shutdown timed out"),
                }
            }
            served?
        }
    };
    tracing::info!(malformed = coordinator.malformed, "term as leader over");
    let _ = relayed.unsubscribe().await;
    let _ = heartbeats.unsubscribe().await;
    Ok(end)
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
                    let batch = api::submit::batch(msg, api);
                    self.handle_api_batch(batch).await;
                }
                Some(msg) = relayed.next() => {
                    let batch = api::submit::batch(msg, relayed);
                    self.handle_api_batch(batch).await;
                }
                Some(msg) = heartbeats.next() => self.handle_heartbeat(msg),
                Some(msg) = departures::next(departures.as_deref_mut()) => self.handle_departure(msg).await,
                msg = events.next() => match msg {
                    Some(Ok(msg)) => self.handle_event(msg).await,
                    Some(Err(e)) => {
                        tracing::warn!(error = %Report(&e), "event consumer error");
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
                    Err(e) => tracing::warn!(error = %Report(&e), "waiting for an assignment's acknowledgement failed"),
                },
                _ = tick.tick() => self.tick().await,
                _ = tokio::time::sleep_until(self.crons.wake()) => self.cron_tick().await,
            }
        }
    }

    /// Rebuilds the in-memory view from the buckets, and re-publishes any
    /// assignment that may not have reached its stream before a crash.
    async fn load(&mut self) -> Result<(), CoordinatorError> {
        use reef_proto::alloc::AllocState;
        use reef_proto::job::JobState;

        for node in self.store.nodes.all().await? {
            self.cluster.upsert_node(node);
        }
        let records = super::checkpoint::read(&self.store).await?;
        let jobs = records.jobs;
        let current: std::collections::HashMap<_, _> =
            jobs.iter().map(|job| (job.id, job.alloc)).collect();
        let mut strays = Vec::new();
        for alloc in records.allocs {
            if alloc.state.is_terminal() {
                continue;
            }
            let pointed_at = match current.get(&alloc.job) {
                Some(pointer) => *pointer == Some(alloc.id),
                // A job the records left out has ended: read it.
                None => self
                    .store
                    .jobs
                    .get(&alloc.job.to_string())
                    .await?
                    .is_some_and(|(job, _)| job.alloc == Some(alloc.id)),
            };
            if !pointed_at {
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
        self.cluster
            .load_replicated(records.groups, records.standing);
        for job in jobs {
            if let JobState::Pending { reason } = job.state {
                self.cluster.wait(
                    job.id,
                    crate::state::cluster::Pending {
                        group: job.replica.map(|r| r.group),
                        spec: job.spec,
                        reason,
                        avoid: job.lost_on.into_iter().collect(),
                    },
                );
            }
        }
        let ended = self.load_instances(records.instances).await?;
        self.converge_load(ended).await?;
        self.rebuild_routes().await;
        self.retry_unsent().await;
        self.publish_node_statuses().await;
        self.checkpoint_tick().await;
        self.load_crons().await?;
        let (nodes, live, pending) = self.cluster.counts();
        tracing::info!(nodes, live, pending, "state loaded");
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
                    tracing::warn!(error = %Report(&e), "cannot open the event consumer; repairing the store");
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
        match crate::store::ensure(self.store.js.clone(), config).await {
            Ok(store) => self.store = store,
            Err(e) => tracing::warn!(error = %Report(&e), "the store could not be repaired yet"),
        }
    }

    async fn event_messages(&self) -> Result<consumer::pull::Stream, CoordinatorError> {
        let setup = |e: BoxError| CoordinatorError::Setup {
            what: format!("consumer {}", subjects::EVENTS_CONSUMER),
            source: e,
        };
        let stream = self
            .store
            .js
            .get_stream(subjects::EVENTS_STREAM)
            .await
            .map_err(|e| setup(e.into()))?;
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
            .map_err(|e| setup(e.into()))?;
        consumer.messages().await.map_err(|e| setup(e.into()))
    }

    fn handle_heartbeat(&mut self, msg: async_nats::Message) {
        let hb = match reef_proto::decode::<reef_proto::node::Heartbeat>(&msg.payload) {
            Ok(hb) => hb,
            Err(e) => {
                self.malformed += 1;
                tracing::debug!(subject = %msg.subject, error = %Report(&e), "dropping malformed heartbeat");
                return;
            }
        };
        if msg.subject.as_str() != subjects::heartbeat(hb.node) {
            self.malformed += 1;
            tracing::debug!(subject = %msg.subject, "dropping heartbeat sent on another node's subject");
            return;
        }
        let heard =
            self.cluster
                .heard_from(hb.node, std::time::Instant::now(), reef_proto::now_ms());
        if heard == Heard::Unknown {
            self.unknown_nodes.insert(hb.node);
            return;
        }
        self.cluster
            .note_heartbeat(hb.node, hb.running, hb.paused, hb.services);
        if heard == Heard::Back {
            self.events.emit(
                reef_proto::events::EventKind::NodeUp,
                &self.cluster.node_name(hb.node),
                "heard from again after it was lost",
            );
        }
    }

    /// Periodic work: learn nodes registered elsewhere, place pending jobs.
    async fn tick(&mut self) {
        for node in std::mem::take(&mut self.unknown_nodes) {
            match self.store.nodes.get(&node.to_string()).await {
                Ok(Some((record, _))) => {
                    self.cluster.upsert_node(record);
                    self.cluster
                        .heard_from(node, std::time::Instant::now(), reef_proto::now_ms());
                }
                Ok(None) => tracing::debug!(%node, "heartbeat from an unregistered node"),
                Err(e) => tracing::warn!(%node, error = %Report(&e), "could not load node"),
            }
        }
        self.retry_unsent().await;
        self.retry_queued().await;
        self.retry_routes().await;
        self.check_liveness().await;
        self.advance_drains().await;
        self.publish_node_statuses().await;
        self.advance_rollouts().await;
        self.converge_tick().await;
        self.checkpoint_tick().await;
        self.retention_tick().await;
        self.sweep_tokens().await;
        self.size_replicas().await;
        self.place_pending(true).await;
        self.cron_tick().await;
        if self.metrics.wants_view() {
            self.metrics.view(self.metrics_view());
        }
    }

    /// The cluster's gauges as this leader sees them now.
    fn metrics_view(&self) -> crate::plan::metrics::View {
        let now = std::time::Instant::now();
        crate::plan::metrics::view(
            self.cluster.pending().values().map(|p| p.reason.as_str()),
            self.cluster.allocs().map(|a| &a.state),
            self.cluster
                .instances()
                .map(|i| (i.app.as_str(), i.version, &i.state)),
            self.cluster.nodes().map(|n| {
                (
                    self.cluster.node_ready(n.record.id, now),
                    n.paused,
                    &n.record.eligibility,
                )
            }),
        )
    }
}
