//! Drain steps on the leader's tick (`reef node drain` itself, eligibility
//! and `rm` are in `api/nodes.rs`); each step is decided by `plan::drain`.
//!
//! A draining node gets no new work. Each tick, every app instance on it that
//! nobody relieves yet gets a relief: a new instance of the same release on
//! another node, which the coordinator stops the old one for once the new one
//! is healthy (see `drive/instances.rs`), so the app never has fewer
//! healthy replicas than before. A relief that fails is simply replaced on a
//! later tick. Batch jobs may run until the deadline; then they, and any
//! instance still without a healthy relief, are stopped, once each. The node counts as
//! drained only when the coordinator's books hold nothing on it and the
//! node's own heartbeat says it runs nothing.

use crate::drive::Coordinator;
use crate::plan::drain::{self, DrainView};
use futures::StreamExt;
use reef_proto::agent::AgentCommand;
use reef_proto::alloc::Allocation;
use reef_proto::api::ApiError;
use reef_proto::app::Instance;
use reef_proto::job::JobRecord;
use reef_proto::node::Eligibility;
use reef_proto::{now_ms, subjects, AllocId, NodeId};
use std::collections::HashSet;

impl Coordinator {
    /// One step of every drain under way: relieve instances, stop what is
    /// past the deadline, and mark empty nodes drained.
    pub(crate) async fn advance_drains(&mut self) {
        let draining: Vec<(NodeId, u64)> = self
            .cluster
            .nodes()
            .filter_map(|e| match e.record.eligibility {
                Eligibility::Draining { deadline_ms } => Some((e.record.id, deadline_ms)),
                _ => None,
            })
            .collect();
        for (node, deadline_ms) in draining {
            if let Err(e) = self.advance_drain(node, deadline_ms).await {
                tracing::warn!(%node, error = %e.message, "drain step failed; will retry");
            }
        }
    }

    async fn advance_drain(&mut self, node: NodeId, deadline_ms: u64) -> Result<(), ApiError> {
        let Some(entry) = self.cluster.node(node) else {
            return Ok(());
        };
        // What this leader's drains asked to stop and is still running.
        let live: HashSet<AllocId> = self.cluster.allocs().map(|a| a.id).collect();
        self.drain_stops.retain(|id| live.contains(id));
        let step = {
            let instances: Vec<&Instance> = self.cluster.instances().collect();
            let allocs: Vec<&Allocation> = self.cluster.allocs().collect();
            drain::step(&DrainView {
                node,
                deadline_ms,
                now_ms: now_ms(),
                instances: &instances,
                allocs: &allocs,
                stopping: self.stopping(),
                stopped: &self.drain_stops,
                booked: entry.allocations,
                running: entry.running,
                lost: entry.lost,
            })
        };
        for id in step.relieve {
            if let Some(instance) = self.cluster.instance(id).cloned() {
                self.relieve(&instance).await?;
            }
        }
        for id in step.stop_instances {
            tracing::info!(%node, instance = %id, "drain deadline passed; stopping the instance");
            self.stop_instance(id, false).await?;
        }
        if !step.stop_jobs.is_empty() {
            let jobs = self.store.jobs.clone();
            let keys: Vec<String> = step.stop_jobs.iter().map(|(j, _)| j.to_string()).collect();
            let marked: Vec<_> = futures::stream::iter(keys)
                .map(move |key| {
                    let jobs = jobs.clone();
                    async move { jobs.modify(&key, mark_stop_requested).await }
                })
                .buffer_unordered(64)
                .collect()
                .await;
            for result in marked {
                result?;
            }
            let mut stops = Vec::with_capacity(step.stop_jobs.len());
            for (job, alloc) in step.stop_jobs {
                tracing::info!(%node, %job, "drain deadline passed; stopping the job");
                self.drain_stops.insert(alloc);
                stops.push((
                    node,
                    format!("stop-{alloc}"),
                    AgentCommand::Stop { alloc, job },
                ));
            }
            self.send_commands(stops).await;
        }
        if step.drained {
            tracing::info!(%node, "node drained");
            self.events.emit(
                reef_proto::events::EventKind::NodeDrained,
                &self.cluster.node_name(node),
                "nothing runs on it; it takes no new work until made eligible",
            );
            self.set_eligibility(node, Eligibility::Drained).await?;
        }
        Ok(())
    }

    /// Starts a new instance of `old`'s release on another node, which takes
    /// over from `old` once healthy.
    async fn relieve(&mut self, old: &Instance) -> Result<(), ApiError> {
        let key = subjects::release_key(&old.app, old.version);
        let Some((release, _)) = self.store.releases.get(&key).await? else {
            return Ok(());
        };
        let siblings = self.siblings(&old.app);
        let node = match self.choose_for_app(&release.spec, &siblings) {
            Ok(placement) => placement.node,
            Err(reason) => {
                tracing::warn!(app = %old.app, %reason, "no node can take a replica off the draining node yet");
                return Ok(());
            }
        };
        let started = self
            .start_instance(&release, node, None, Some(old.id))
            .await?;
        tracing::info!(app = %old.app, from = %old.node, to = %node, instance = %started.id, "moving a replica off a draining node");
        Ok(())
    }
}

/// A job record with its stop requested (false: it ended, or was asked already).
fn mark_stop_requested(job: &mut JobRecord) -> bool {
    if job.state.is_terminal() || job.stop_requested {
        return false;
    }
    job.stop_requested = true;
    true
}
