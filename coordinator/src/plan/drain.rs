//! One step of a drain, as a pure function of the node's live work, what
//! was already asked of it, and the time.
//!
//! Before the deadline, every live instance on the node that nobody
//! relieves yet and that is not being stopped gets a relief (a new
//! instance of its release elsewhere, which takes over once healthy). At
//! the deadline, every instance and job still there is stopped, once: what
//! was already asked to stop is not asked again on the next tick. The node
//! is drained when the coordinator's books hold nothing on it and its own
//! heartbeat says it runs nothing (or it is lost).
//!
//! `drive/drain.rs` gathers these inputs, calls [`step`], then writes.

use reef_proto::alloc::Allocation;
use reef_proto::app::Instance;
use reef_proto::{AllocId, InstanceId, JobId, NodeId};
use std::collections::HashSet;

/// What a drain step looks at.
pub struct DrainView<'a> {
    pub node: NodeId,
    pub deadline_ms: u64,
    pub now_ms: u64,
    /// Every live instance in the cluster (a relief may run anywhere).
    pub instances: &'a [&'a Instance],
    /// Every live allocation.
    pub allocs: &'a [&'a Allocation],
    /// Instances already asked to stop.
    pub stopping: &'a HashSet<InstanceId>,
    /// Allocations already asked to stop by this drain.
    pub stopped: &'a HashSet<AllocId>,
    /// Allocations and instances the coordinator's books hold on the node.
    pub booked: u32,
    /// What the node's last heartbeat said it runs.
    pub running: u32,
    /// Whether the node is declared lost.
    pub lost: bool,
}

/// What to do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainStep {
    /// Instances to relieve (start a replacement elsewhere), in id order.
    pub relieve: Vec<InstanceId>,
    /// Instances to stop, in id order.
    pub stop_instances: Vec<InstanceId>,
    /// Jobs to stop, with their allocation on the node, in id order.
    pub stop_jobs: Vec<(JobId, AllocId)>,
    /// Nothing is left on the node: mark it drained.
    pub drained: bool,
}

pub fn step(view: &DrainView<'_>) -> DrainStep {
    let past_deadline = view.now_ms >= view.deadline_ms;
    let mut on_node: Vec<&Instance> = view
        .instances
        .iter()
        .copied()
        .filter(|i| i.node == view.node && !i.state.is_terminal())
        .filter(|i| !view.stopping.contains(&i.id))
        .collect();
    on_node.sort_by_key(|i| i.id);
    let relieved: HashSet<InstanceId> = view
        .instances
        .iter()
        .filter(|i| !i.state.is_terminal())
        .filter_map(|i| i.relieves)
        .collect();
    let mut out = DrainStep {
        drained: view.booked == 0 && (view.running == 0 || view.lost),
        ..DrainStep::default()
    };
    if past_deadline {
        out.stop_instances = on_node.iter().map(|i| i.id).collect();
        let mut jobs: Vec<(JobId, AllocId)> = view
            .allocs
            .iter()
            .filter(|a| a.node == view.node && !a.state.is_terminal())
            .filter(|a| !view.stopped.contains(&a.id))
            .map(|a| (a.job, a.id))
            .collect();
        jobs.sort_by_key(|(_, alloc)| *alloc);
        out.stop_jobs = jobs;
    } else {
        out.relieve = on_node
            .iter()
            .filter(|i| !relieved.contains(&i.id))
            .map(|i| i.id)
            .collect();
    }
    out
}

#[cfg(test)]
#[path = "drain_tests.rs"]
mod tests;
