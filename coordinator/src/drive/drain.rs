//! Draining and eligibility: `reef node drain`, `eligible` and `rm`.
//!
//! A draining node gets no new work. Each tick, every app instance on it that
//! nobody relieves yet gets a relief: a new instance of the same release on
//! another node, which the coordinator stops the old one for once the new one
//! is healthy (see `drive/instances.rs`), so the app never has fewer
//! healthy replicas than before. A relief that fails is simply replaced on a
//! later tick. Batch jobs may run until the deadline; then they, and any
//! instance still without a healthy relief, are stopped. The node counts as
//! drained only when the coordinator's books hold nothing on it and the
//! node's own heartbeat says it runs nothing.

use crate::drive::Coordinator;
use reef_proto::api::ApiError;
use reef_proto::app::Instance;
use reef_proto::node::Eligibility;
use reef_proto::{now_ms, subjects, NodeId};

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
        let past_deadline = now_ms() >= deadline_ms;
        let on_node: Vec<Instance> = self
            .cluster
            .instances()
            .filter(|i| i.node == node && !i.state.is_terminal())
            .cloned()
            .collect();
        for instance in on_node {
            let relieved = self
                .cluster
                .instances()
                .any(|i| i.relieves == Some(instance.id) && !i.state.is_terminal());
            if past_deadline {
                self.stop_instance(instance.id, false).await?;
            } else if !relieved {
                self.relieve(&instance).await?;
            }
        }
        if past_deadline {
            let jobs: Vec<(reef_proto::JobId, reef_proto::AllocId)> = self
                .cluster
                .allocs()
                .filter(|a| a.node == node)
                .map(|a| (a.job, a.id))
                .collect();
            for (job, alloc) in jobs {
                let stopped = self
                    .store
                    .jobs
                    .modify(&job.to_string(), |j| {
                        if j.state.is_terminal() || j.stop_requested {
                            return false;
                        }
                        j.stop_requested = true;
                        true
                    })
                    .await?;
                if stopped.is_some() {
                    tracing::info!(%node, %job, "drain deadline passed; stopping the job");
                }
                self.send_command(
                    node,
                    format!("stop-{alloc}"),
                    reef_proto::agent::AgentCommand::Stop { alloc, job },
                )
                .await;
            }
        }
        let Some(entry) = self.cluster.node(node) else {
            return Ok(());
        };
        if entry.allocations == 0 && (entry.running == 0 || entry.lost) {
            tracing::info!(%node, name = %entry.record.name, "node drained");
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
