//! Node loss: a node silent for longer than the grace period (or whose
//! agent's connection closed) is declared lost. What that does is decided
//! by `plan::node_loss`: its job allocations end as `lost` (their jobs too,
//! with the reason), its app instances end as `lost` and the reconciler
//! (`converge.rs`) places replacements on other nodes, and for each a stop
//! command is queued on the node's own subject, so a node that was only cut
//! off stops its stale copies as soon as it is back, before anything else
//! it reads, and exactly the desired replicas remain. The writes go out in
//! concurrent batches, as intake's do.
//!
//! A batch job on a lost node is not re-run: its process may still be
//! running (a partition, not a crash), and running it again could run it
//! twice. It is reported `lost` and its owner decides.

use super::events::write_job_after;
use crate::drive::Coordinator;
use crate::error::{CoordinatorError, Report};
use crate::plan::node_loss;
use crate::store::{Bucket, StoreError};
use futures::StreamExt;
use reef_proto::agent::AllocEvent;
use reef_proto::alloc::{AllocState, Allocation};
use reef_proto::app::{Instance, InstanceState};
use reef_proto::{now_ms, AllocId, InstanceId, NodeId};
use std::time::Instant;

impl Coordinator {
    /// Declares silent nodes lost and moves their work.
    pub(crate) async fn check_liveness(&mut self) {
        let lost = self.cluster.newly_lost(Instant::now(), self.started);
        if !lost.is_empty() {
            // Down in `node.list` before anything of theirs is said lost.
            self.publish_node_statuses().await;
        }
        for node in lost {
            let (name, gone) = self
                .cluster
                .node(node)
                .map(|n| (n.record.name.clone(), n.gone))
                .unwrap_or_default();
            let reason = match gone {
                true => format!("the agent of node {name} went away (its connection closed)"),
                false => format!("node {name} stopped responding"),
            };
            tracing::warn!(%node, %name, %reason, "node lost; moving its work");
            match self.node_lost(node, &reason).await {
                // Once: a loss whose work could not be moved is tried again.
                Ok(()) => self.events.emit(
                    reef_proto::events::EventKind::NodeDown,
                    &name,
                    reason.as_str(),
                ),
                Err(e) => {
                    tracing::error!(%node, error = %Report(&e), "could not move the work of a lost node; will retry");
                    self.cluster.unmark_lost(node);
                }
            }
        }
    }

    /// Ends the lost node's work as `node_loss::plan` decides, in batches:
    /// the allocations at once, then their jobs at once, then the
    /// instances at once, then the stops. What could not be written is
    /// left in the view, and the whole loss is tried again on the next tick.
    async fn node_lost(&mut self, node: NodeId, reason: &str) -> Result<(), CoordinatorError> {
        let loss = {
            let allocs: Vec<&Allocation> = self.cluster.allocs().collect();
            let instances: Vec<&Instance> = self.cluster.instances().collect();
            node_loss::plan(node, &allocs, &instances)
        };
        let now = now_ms();
        let mut failed: Option<CoordinatorError> = None;

        let lost_allocs: Vec<_> = {
            let todo: Vec<_> = loss
                .allocs
                .iter()
                .map(|id| (*id, self.cluster.cached_alloc(*id)))
                .collect();
            let allocs = self.store.allocs.clone();
            let reason = reason.to_string();
            futures::stream::iter(todo)
                .map(move |(id, cached)| {
                    let (allocs, reason) = (allocs.clone(), reason.clone());
                    async move { (id, lose_alloc(&allocs, id, cached, &reason, now).await) }
                })
                .buffer_unordered(WRITES_IN_FLIGHT)
                .collect()
                .await
        };
        let mut ended = Vec::new();
        for (id, result) in lost_allocs {
            match result {
                Ok(Some(done)) => ended.push(done),
                // Gone from KV, or ended some other way meanwhile.
                Ok(None) => {
                    self.cluster.release(id);
                }
                Err(e) => failed = Some(e.into()),
            }
        }
        let jobs: Vec<_> = {
            let todo: Vec<_> = ended
                .into_iter()
                .map(|(alloc, event)| {
                    let cached = self.cluster.take_cached_job(alloc.job);
                    (alloc, event, cached)
                })
                .collect();
            let jobs = self.store.jobs.clone();
            futures::stream::iter(todo)
                .map(move |(alloc, event, cached)| {
                    let jobs = jobs.clone();
                    async move {
                        let written = write_job_after(&jobs, cached, &alloc, &event).await;
                        (alloc.id, written)
                    }
                })
                .buffer_unordered(WRITES_IN_FLIGHT)
                .collect()
                .await
        };
        for (alloc, job) in jobs {
            match job {
                Ok(Some((job, revision))) => {
                    self.cluster.release(alloc);
                    self.job_written(job, revision).await?;
                }
                Ok(None) => {
                    self.cluster.release(alloc);
                }
                Err(e) => failed = Some(e.into()),
            }
        }

        let lost_instances: Vec<_> = {
            let instances = self.store.instances.clone();
            let reason = reason.to_string();
            futures::stream::iter(loss.instances.clone())
                .map(move |id| {
                    let (instances, reason) = (instances.clone(), reason.clone());
                    async move { (id, lose_instance(&instances, id, &reason, now).await) }
                })
                .buffer_unordered(WRITES_IN_FLIGHT)
                .collect()
                .await
        };
        for (id, result) in lost_instances {
            if let Err(e) = result {
                failed = Some(e.into());
                continue;
            }
            if let Some(mut gone) = self.cluster.release_instance(id) {
                gone.state = InstanceState::Lost {
                    reason: reason.to_string(),
                };
                self.converger.note_ended(&gone);
            }
            self.routes_forget_instance(id);
        }

        let stops = loss
            .stops
            .into_iter()
            .map(|(msg_id, command)| (node, msg_id, command))
            .collect();
        self.send_commands(stops).await;
        // The reconciler places the instances' replacements.
        for app in &loss.apps {
            self.sync_routes(app).await;
        }
        self.place_pending(false).await;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// How many writes a loss keeps in flight.
const WRITES_IN_FLIGHT: usize = 64;

/// Ends allocation `id` `lost` in KV (from `cached` when that is current).
/// The allocation and the event that ended it when it is lost now (by this
/// write or an earlier attempt), for its job; None when it ended otherwise.
async fn lose_alloc(
    allocs: &Bucket<Allocation>,
    id: AllocId,
    cached: Option<(Allocation, u64)>,
    reason: &str,
    now: u64,
) -> Result<Option<(Allocation, AllocEvent)>, StoreError> {
    let stored = allocs
        .modify_from(
            &id.to_string(),
            cached,
            |alloc| match node_loss::lost_alloc(alloc, reason, now) {
                Some((lost, _)) => {
                    *alloc = lost;
                    true
                }
                None => false,
            },
        )
        .await?;
    Ok(stored.and_then(|(alloc, _)| match &alloc.state {
        AllocState::Lost { .. } => {
            let event = node_loss::lost_event(&alloc, now);
            Some((alloc, event))
        }
        _ => None,
    }))
}

/// Ends instance `id` `lost` in KV, unless it has ended already.
async fn lose_instance(
    instances: &Bucket<Instance>,
    id: InstanceId,
    reason: &str,
    now: u64,
) -> Result<(), StoreError> {
    instances
        .modify(&id.to_string(), |instance| {
            match node_loss::lost_instance(instance, reason, now) {
                Some(lost) => {
                    *instance = lost;
                    true
                }
                None => false,
            }
        })
        .await?;
    Ok(())
}
