//! Draining and eligibility: `reef node drain`, `eligible` and `rm`.
//!
//! A draining node gets no new work. Each tick, every app instance on it that
//! nobody relieves yet gets a relief: a new instance of the same release on
//! another node, which the coordinator stops the old one for once the new one
//! is healthy (see `apps::apply_instance_event`), so the app never has fewer
//! healthy replicas than before. A relief that fails is simply replaced on a
//! later tick. Batch jobs may run until the deadline; then they, and any
//! instance still without a healthy relief, are stopped. The node counts as
//! drained only when the coordinator's books hold nothing on it and the
//! node's own heartbeat says it runs nothing.

use crate::{store, Coordinator};
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::app::{Instance, Release};
use reef_proto::job::JobRecord;
use reef_proto::node::{Eligibility, NodeRecord};
use reef_proto::{now_ms, subjects, NodeId};

/// The longest drain deadline accepted.
const MAX_DEADLINE_MS: u64 = 7 * 24 * 3_600_000;

impl Coordinator {
    /// Finds a node by id or by name; an error names the problem.
    fn resolve_node(&self, node: &str) -> Result<NodeId, ApiError> {
        if let Some(entry) = self
            .cluster
            .nodes
            .values()
            .find(|e| e.record.id.to_string() == node)
        {
            return Ok(entry.record.id);
        }
        let named: Vec<NodeId> = self
            .cluster
            .nodes
            .values()
            .filter(|e| e.record.name == node)
            .map(|e| e.record.id)
            .collect();
        match named.as_slice() {
            [id] => Ok(*id),
            [] => Err(ApiError::new(
                ApiErrorKind::NotFound,
                format!("no node {node:?}; `reef nodes` lists them"),
            )),
            _ => Err(ApiError::new(
                ApiErrorKind::Invalid,
                format!("{} nodes are named {node:?}; give the node id", named.len()),
            )),
        }
    }

    /// Sets a node's eligibility in KV and in the view.
    async fn set_eligibility(&mut self, id: NodeId, to: Eligibility) -> Result<(), ApiError> {
        let updated = store::modify::<NodeRecord>(&self.store.nodes, &id.to_string(), |r| {
            if r.eligibility == to {
                return false;
            }
            r.eligibility = to;
            true
        })
        .await?;
        if let (Some(record), Some(entry)) = (updated, self.cluster.nodes.get_mut(&id)) {
            entry.record.eligibility = record.eligibility;
        }
        Ok(())
    }

    pub(crate) async fn drain_node(
        &mut self,
        node: &str,
        deadline_ms: u64,
    ) -> Result<(), ApiError> {
        let id = self.resolve_node(node)?;
        if deadline_ms > MAX_DEADLINE_MS {
            return Err(ApiError::new(
                ApiErrorKind::Invalid,
                "the drain deadline must be at most 7 days",
            ));
        }
        let deadline_ms = now_ms().saturating_add(deadline_ms);
        tracing::info!(node = %id, "draining");
        self.set_eligibility(id, Eligibility::Draining { deadline_ms })
            .await?;
        self.advance_drains().await;
        Ok(())
    }

    pub(crate) async fn set_eligible(
        &mut self,
        node: &str,
        eligible: bool,
    ) -> Result<(), ApiError> {
        let id = self.resolve_node(node)?;
        let to = if eligible {
            Eligibility::Eligible
        } else {
            Eligibility::Ineligible
        };
        self.set_eligibility(id, to).await?;
        if eligible {
            self.place_pending(false).await;
        }
        Ok(())
    }

    pub(crate) async fn remove_node(&mut self, node: &str) -> Result<(), ApiError> {
        let id = self.resolve_node(node)?;
        let entry = &self.cluster.nodes[&id];
        if entry.allocations > 0 && !entry.lost {
            return Err(ApiError::new(
                ApiErrorKind::Invalid,
                format!(
                    "node {} still runs {} allocation(s); drain it first (`reef node drain {}`)",
                    entry.record.name, entry.allocations, entry.record.name
                ),
            ));
        }
        self.store
            .nodes
            .delete(id.to_string())
            .await
            .map_err(crate::CoordinatorError::store)?;
        self.cluster.nodes.remove(&id);
        tracing::info!(node = %id, "node removed");
        // Its credential goes with it: disconnected now, refused from now on.
        self.revoke_node(id).await
    }

    /// One step of every drain under way: relieve instances, stop what is
    /// past the deadline, and mark empty nodes drained.
    pub(crate) async fn advance_drains(&mut self) {
        let draining: Vec<(NodeId, u64)> = self
            .cluster
            .nodes
            .values()
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
            .instances
            .values()
            .map(|(i, _)| i)
            .filter(|i| i.node == node && !i.state.is_terminal())
            .cloned()
            .collect();
        for instance in on_node {
            let relieved = self
                .cluster
                .instances
                .values()
                .any(|(i, _)| i.relieves == Some(instance.id) && !i.state.is_terminal());
            if past_deadline {
                self.stop_instance(instance.id, false).await?;
            } else if !relieved {
                self.relieve(&instance).await?;
            }
        }
        if past_deadline {
            let jobs: Vec<(reef_proto::JobId, reef_proto::AllocId)> = self
                .cluster
                .live
                .values()
                .filter(|a| a.node == node)
                .map(|a| (a.job, a.id))
                .collect();
            for (job, alloc) in jobs {
                let stopped = store::modify::<JobRecord>(&self.store.jobs, &job.to_string(), |j| {
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
        let entry = &self.cluster.nodes[&node];
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
        let Some((release, _)) = store::get::<Release>(&self.store.releases, &key).await? else {
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
