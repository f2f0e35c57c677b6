//! Node loss: a node silent for longer than the grace period is declared
//! lost. Its job allocations end as `lost` (their jobs too, with the reason);
//! its app instances end as `lost`, and the reconciler (`converge.rs`)
//! places replacements on other nodes. For each, a stop command is queued on the node's own subject, so a
//! node that was only cut off stops its stale copies as soon as it is back,
//! before anything else it reads, and exactly the desired replicas remain.
//!
//! A batch job on a lost node is not re-run: its process may still be
//! running (a partition, not a crash), and running it again could run it
//! twice. It is reported `lost` and its owner decides.

use crate::drive::Coordinator;
use crate::error::CoordinatorError;
use crate::error::Report;
use reef_proto::agent::{AgentCommand, AllocEvent};
use reef_proto::alloc::{AllocState, Allocation};
use reef_proto::app::{Instance, InstanceState};
use reef_proto::{now_ms, NodeId};
use std::collections::BTreeSet;
use std::time::Instant;

impl Coordinator {
    /// Declares silent nodes lost and moves their work.
    pub(crate) async fn check_liveness(&mut self) {
        for node in self.cluster.newly_lost(Instant::now(), self.started) {
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
            if let Err(e) = self.node_lost(node, &reason).await {
                tracing::error!(%node, error = %Report(&e), "could not move the work of a lost node; will retry");
                self.cluster.unmark_lost(node);
            }
        }
    }

    async fn node_lost(&mut self, node: NodeId, reason: &str) -> Result<(), CoordinatorError> {
        let reason = reason.to_string();
        let allocs: Vec<Allocation> = self
            .cluster
            .allocs()
            .filter(|a| a.node == node)
            .cloned()
            .collect();
        for alloc in allocs {
            let lost = AllocState::Lost {
                reason: reason.clone(),
            };
            let stored = self
                .store
                .allocs
                .modify(&alloc.id.to_string(), |a| {
                    a.updated_at_ms = now_ms();
                    a.state.advance(lost.clone())
                })
                .await?;
            if let Some(stored) = stored.filter(|a| a.state == lost) {
                let event = AllocEvent {
                    alloc: stored.id,
                    job: stored.job,
                    node,
                    seq: stored.event_seq,
                    state: lost.clone(),
                    at_ms: now_ms(),
                    output_lines: None,
                    usage: None,
                    result: None,
                };
                self.update_job(&stored, &event).await?;
            }
            self.cluster.release(alloc.id);
            self.send_command(
                node,
                format!("stop-{}", alloc.id),
                AgentCommand::Stop {
                    alloc: alloc.id,
                    job: alloc.job,
                },
            )
            .await;
        }

        let instances: Vec<Instance> = self
            .cluster
            .instances()
            .filter(|i| i.node == node)
            .cloned()
            .collect();
        let mut apps = BTreeSet::new();
        for instance in instances {
            self.store
                .instances
                .modify(&instance.id.to_string(), |i| {
                    if i.state.is_terminal() {
                        return false;
                    }
                    i.state = InstanceState::Lost {
                        reason: reason.clone(),
                    };
                    i.updated_at_ms = now_ms();
                    true
                })
                .await?;
            if let Some(mut ended) = self.cluster.release_instance(instance.id) {
                ended.state = InstanceState::Lost {
                    reason: reason.clone(),
                };
                self.converger.note_ended(&ended);
            }
            self.routes_forget_instance(instance.id);
            self.send_command(
                node,
                format!("stop-{}", instance.id),
                AgentCommand::StopInstance {
                    instance: instance.id,
                    forget_app: false,
                },
            )
            .await;
            apps.insert(instance.app);
        }
        // The reconciler places their replacements.
        for app in apps {
            self.sync_routes(&app).await;
        }
        self.place_pending(false).await;
        Ok(())
    }
}
