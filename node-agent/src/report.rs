//! Talking back: registration with a coordinator, heartbeats on core NATS,
//! and allocation events on JetStream. An event counts as reported once
//! JetStream acknowledged it; anything unreported is retried with every
//! heartbeat, so a NATS outage delays reports but never loses them.

use crate::records::{Record, Records};
use crate::Agent;
use reef_proto::api::{ApiError, ApiReply, ApiRequest, ApiResponse};
use reef_proto::node::{Heartbeat, NodeRecord};
use reef_proto::{decode, encode, now_ms, subjects};
use std::sync::Arc;
use std::time::Duration;

/// Why an API call made as this node did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Call {
    /// No coordinator answered (none runs yet, or not in time).
    #[error("{0}")]
    Unanswered(String),
    /// A coordinator refused it, saying why.
    #[error("{0}")]
    Refused(ApiError),
    /// The request or its answer could not be read.
    #[error("{0}")]
    Malformed(String),
}

/// How long one publish or request may take before it counts as failed.
const NATS_TIMEOUT: Duration = Duration::from_secs(5);
/// Terminal, reported records are kept this long to recognise redeliveries.
const KEEP_FINISHED_MS: u64 = 24 * 3_600_000;

impl Agent {
    /// Publishes a record's current state as an event (on
    /// `reef.events.<node>.<id>`) and notes it reported once JetStream has it.
    pub(crate) async fn report<R: Record>(&self, records: &Records<R>, record: &R) {
        let id = record.id();
        let payload = match record.event_payload() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%id, error = %e, "event could not be encoded");
                return;
            }
        };
        let subject = record.event_subject();
        let sent = tokio::time::timeout(NATS_TIMEOUT, async {
            self.js.publish(subject, payload).await?.await?;
            Ok::<_, async_nats::Error>(())
        })
        .await;
        match sent {
            Ok(Ok(())) => {
                if let Err(e) = records.mark_reported(id, record.seq()).await {
                    tracing::error!(%id, error = %e, "could not record a report");
                }
            }
            Ok(Err(e)) => tracing::warn!(%id, error = %e, "event not reported yet; will retry"),
            Err(_) => tracing::warn!(%id, "event report timed out; will retry"),
        }
    }

    /// Reports every unreported record of `records` whose runner is not active.
    async fn report_pending<R: Record>(
        &self,
        records: &Records<R>,
        active: impl Fn(R::Id) -> bool,
    ) {
        for record in records.unreported() {
            if !active(record.id()) {
                self.report(records, &record).await;
            }
        }
    }

    /// Registers until a coordinator accepts, then heartbeats until shutdown,
    /// retrying unreported events on every beat.
    pub(crate) async fn heartbeat_loop(self: Arc<Self>) {
        let mut registered = false;
        let mut interval = tokio::time::interval(self.config.heartbeat_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beats: u64 = 0;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            if !registered {
                registered = self.register().await;
            }
            self.beat().await;
            // Live allocations and instances are reported by their runners.
            self.report_pending(&self.records, |id| self.lock_running().contains_key(&id))
                .await;
            self.report_pending(&self.instances, |id| self.services.is_running(id))
                .await;
            beats += 1;
            if beats % 3600 == 0 {
                self.records.prune(KEEP_FINISHED_MS);
            }
        }
        // Final reports from jobs stopped at shutdown are sent by their
        // executors; this catches any that were already pending.
        self.report_pending(&self.records, |_| false).await;
        self.report_pending(&self.instances, |_| false).await;
    }

    fn node_record(&self) -> NodeRecord {
        NodeRecord {
            id: self.node,
            name: self.config.name.clone(),
            labels: self.config.labels.clone(),
            resources: self.resources,
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_ms: self.started_at_ms,
            registered_at_ms: 0,
            sealing_key: self.node_key.public(),
            gpus: self.gpus.clone(),
            trust: self.config.trust,
            eligibility: Default::default(),
            proxy_addr: self.proxy_addr,
            sandbox: self.sandbox.enabled(),
            job_network: self.jobs_may_use_network(),
            public_http: self.public.http,
            postgres_versions: self.postgres_versions(),
        }
    }

    /// One registration attempt; true once a coordinator accepted it.
    pub(crate) async fn register(&self) -> bool {
        let request = ApiRequest::RegisterNode {
            record: self.node_record(),
            credential: self.config.credential.clone(),
        };
        match self.call(&request).await {
            Ok(_) => {
                tracing::info!(node = %self.node, "registered with the coordinator");
                self.registered.send_replace(true);
                true
            }
            Err(Call::Refused(e)) => {
                tracing::error!(error = %e, "registration refused");
                false
            }
            Err(Call::Malformed(e)) => {
                tracing::warn!(error = %e, "malformed registration reply");
                false
            }
            Err(Call::Unanswered(e)) => {
                tracing::debug!(error = %e, "no coordinator answered the registration yet");
                false
            }
        }
    }

    /// Makes one API call as this node (`reef.api.node.<node>.<verb>`).
    pub(crate) async fn call(&self, request: &ApiRequest) -> Result<ApiResponse, Call> {
        let payload = encode(request).map_err(|e| Call::Malformed(e.to_string()))?;
        let subject = subjects::api(
            reef_proto::roles::Role::Node,
            &self.node.to_string(),
            request.verb(),
        );
        let msg = tokio::time::timeout(NATS_TIMEOUT, self.client.request(subject, payload))
            .await
            .map_err(|_| Call::Unanswered("no coordinator answered in time".into()))?
            .map_err(|e| Call::Unanswered(e.to_string()))?;
        match decode::<ApiReply>(&msg.payload) {
            Ok(ApiReply(Ok(response))) => Ok(response),
            Ok(ApiReply(Err(e))) => Err(Call::Refused(e)),
            Err(reef_proto::DecodeError::Version { got }) => {
                Err(Call::Malformed(reef_proto::envelope::refuse_cluster(got)))
            }
            Err(e) => Err(Call::Malformed(e.to_string())),
        }
    }

    async fn beat(&self) {
        self.follow_owner();
        let hb = Heartbeat {
            node: self.node,
            started_at_ms: self.started_at_ms,
            running: (self.records.live_count() + self.instances.live_count()) as u32,
            sent_at_ms: now_ms(),
            paused: self.paused(),
            traffic: self
                .router
                .metrics()
                .traffic(reef_proto::node::MAX_TRAFFIC_APPS)
                .into_iter()
                .map(|c| reef_proto::node::AppTraffic {
                    app: c.app,
                    requests: c.requests,
                    errors: c.errors,
                    latency_micros: c.latency_micros,
                })
                .collect(),
            services: self.managed.reports(),
        };
        match encode(&hb) {
            Ok(payload) => {
                if let Err(e) = self
                    .client
                    .publish(subjects::heartbeat(self.node), payload)
                    .await
                {
                    tracing::debug!(error = %e, "heartbeat not sent");
                }
            }
            Err(e) => tracing::error!(error = %e, "heartbeat could not be encoded"),
        }
    }
}
