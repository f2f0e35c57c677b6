//! What a lost node's work becomes, as a pure function of the live
//! allocations and instances on it: each allocation ends `lost` (and its
//! job follows, through `transitions::job_after`: lost, or back to pending
//! when it has retries left), each instance ends `lost` (the reconciler
//! places replacements), and a stop for every one of them is queued on the
//! node's own subject, so a node that was only cut off stops its stale
//! copies as soon as it is back, before anything else it reads.
//!
//! `drive/node_loss.rs` decides with [`plan`], then writes the allocations,
//! the jobs and the instances in concurrent batches, then publishes.

use reef_proto::agent::{AgentCommand, AllocEvent};
use reef_proto::alloc::{AllocState, Allocation};
use reef_proto::app::{Instance, InstanceState};
use reef_proto::{AllocId, InstanceId, NodeId};
use std::collections::BTreeSet;

/// Everything a node's loss does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loss {
    /// Allocations to end `lost`, in id order.
    pub allocs: Vec<AllocId>,
    /// Instances to end `lost`, in id order.
    pub instances: Vec<InstanceId>,
    /// Commands for the node, (message id, command): one stop for each.
    pub stops: Vec<(String, AgentCommand)>,
    /// Apps whose routes change.
    pub apps: BTreeSet<String>,
}

/// What losing `node` does to the live allocations and instances given
/// (those of other nodes, and finished ones, are left alone).
pub fn plan(node: NodeId, allocs: &[&Allocation], instances: &[&Instance]) -> Loss {
    let mut loss = Loss::default();
    let live_here = |on: NodeId, ended: bool| on == node && !ended;
    let mut mine: Vec<&Allocation> = allocs
        .iter()
        .copied()
        .filter(|a| live_here(a.node, a.state.is_terminal()))
        .collect();
    mine.sort_by_key(|a| a.id);
    for alloc in mine {
        loss.allocs.push(alloc.id);
        loss.stops.push((
            format!("stop-{}", alloc.id),
            AgentCommand::Stop {
                alloc: alloc.id,
                job: alloc.job,
            },
        ));
    }
    let mut instances: Vec<&Instance> = instances.to_vec();
    instances.retain(|i| live_here(i.node, i.state.is_terminal()));
    instances.sort_by_key(|i| i.id);
    for instance in instances {
        loss.instances.push(instance.id);
        loss.apps.insert(instance.app.clone());
        loss.stops.push((
            format!("stop-{}", instance.id),
            AgentCommand::StopInstance {
                instance: instance.id,
                forget_app: false,
            },
        ));
    }
    loss
}

/// `alloc` ended `lost` with `reason` at `now_ms`, and the event that says
/// so (for the job's side, `transitions::job_after`); None when it has
/// ended already, which a fresh read may show.
pub fn lost_alloc(
    alloc: &Allocation,
    reason: &str,
    now_ms: u64,
) -> Option<(Allocation, AllocEvent)> {
    let mut lost = alloc.clone();
    let state = AllocState::Lost {
        reason: reason.to_string(),
    };
    if !lost.state.advance(state) {
        return None;
    }
    lost.updated_at_ms = now_ms;
    let event = lost_event(&lost, now_ms);
    Some((lost, event))
}

/// The event that reports `alloc`'s current state (its loss), as if its
/// node had sent it, for the job's side.
pub fn lost_event(alloc: &Allocation, now_ms: u64) -> AllocEvent {
    AllocEvent {
        alloc: alloc.id,
        job: alloc.job,
        node: alloc.node,
        seq: alloc.event_seq,
        state: alloc.state.clone(),
        at_ms: now_ms,
        output_lines: None,
        usage: None,
        result: None,
    }
}

/// `instance` ended `lost` with `reason` at `now_ms`; None when it has
/// ended already.
pub fn lost_instance(instance: &Instance, reason: &str, now_ms: u64) -> Option<Instance> {
    if instance.state.is_terminal() {
        return None;
    }
    let mut lost = instance.clone();
    lost.state = InstanceState::Lost {
        reason: reason.to_string(),
    };
    lost.updated_at_ms = now_ms;
    Some(lost)
}

#[cfg(test)]
#[path = "node_loss_tests.rs"]
mod tests;
