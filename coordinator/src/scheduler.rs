//! Placement: a pure function from (job, nodes) to a node, or to the reason no
//! node fits. No I/O, so every rule is tested exhaustively below.
//!
//! Filters: the node is ready, carries every required label, and has the CPU
//! and memory the job asks for left after what is already committed to it.
//! Score: the node with the most room left after placement (the smaller of its
//! free CPU and memory fractions), ties broken by fewer allocations and then by
//! id, so load spreads evenly and the result is deterministic.

use reef_proto::job::{JobSpec, Resources};
use reef_proto::node::NodeResources;
use reef_proto::units::format_size;
use reef_proto::NodeId;
use std::collections::BTreeMap;

/// What the scheduler needs to know about one node.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub id: NodeId,
    pub name: &'a str,
    pub ready: bool,
    pub labels: &'a BTreeMap<String, String>,
    pub capacity: NodeResources,
    /// Resources already committed to live allocations on the node.
    pub allocated: Resources,
    pub allocations: u32,
}

impl Candidate<'_> {
    fn free_cpu(&self) -> u32 {
        self.capacity
            .cpu_millis
            .saturating_sub(self.allocated.cpu_millis)
    }

    fn free_memory(&self) -> u64 {
        self.capacity
            .memory_bytes
            .saturating_sub(self.allocated.memory_bytes)
    }

    /// Room left after placing `need`, as the smaller of the two free fractions.
    fn room_after(&self, need: &Resources) -> f64 {
        let cpu =
            (self.free_cpu() - need.cpu_millis) as f64 / self.capacity.cpu_millis.max(1) as f64;
        let mem = (self.free_memory() - need.memory_bytes) as f64
            / self.capacity.memory_bytes.max(1) as f64;
        cpu.min(mem)
    }
}

/// Why a job could not be placed, counted per cause.
#[derive(Debug, Default, PartialEq, Eq)]
struct Rejections {
    not_ready: usize,
    labels: usize,
    cpu: usize,
    memory: usize,
    most_free_cpu: u32,
    most_free_memory: u64,
}

impl Rejections {
    fn reason(&self, demand: &Demand<'_>) -> String {
        let total = self.not_ready + self.labels + self.cpu + self.memory;
        if total == 0 {
            return "no nodes are registered".to_string();
        }
        let mut parts = Vec::new();
        if self.not_ready > 0 {
            parts.push(format!("{} down", self.not_ready));
        }
        if self.labels > 0 {
            let wanted: Vec<String> = demand
                .constraints
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.push(format!(
                "{} without labels {}",
                self.labels,
                wanted.join(",")
            ));
        }
        if self.cpu > 0 {
            parts.push(format!(
                "{} with too little free cpu (needs {:.3} cores, most free {:.3})",
                self.cpu,
                demand.resources.cpu_millis as f64 / 1000.0,
                self.most_free_cpu as f64 / 1000.0
            ));
        }
        if self.memory > 0 {
            parts.push(format!(
                "{} with too little free memory (needs {}, most free {})",
                self.memory,
                format_size(demand.resources.memory_bytes),
                format_size(self.most_free_memory)
            ));
        }
        format!("no node fits: of {total} nodes, {}", parts.join("; "))
    }
}

/// What a piece of work asks of a node.
#[derive(Clone, Copy, Debug)]
pub struct Demand<'a> {
    pub resources: Resources,
    pub constraints: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a JobSpec> for Demand<'a> {
    fn from(spec: &'a JobSpec) -> Self {
        Demand {
            resources: spec.resources,
            constraints: &spec.constraints,
        }
    }
}

/// Picks the node for `spec`, or says why none fits.
pub fn place(spec: &JobSpec, nodes: &[Candidate<'_>]) -> Result<NodeId, String> {
    place_demand(spec.into(), nodes)
}

/// Picks the node for `demand`, or says why none fits.
pub fn place_demand(demand: Demand<'_>, nodes: &[Candidate<'_>]) -> Result<NodeId, String> {
    let need = &demand.resources;
    let mut rejected = Rejections::default();
    let mut best: Option<(&Candidate<'_>, f64)> = None;
    for node in nodes {
        if !node.ready {
            rejected.not_ready += 1;
            continue;
        }
        if !demand
            .constraints
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v))
        {
            rejected.labels += 1;
            continue;
        }
        rejected.most_free_cpu = rejected.most_free_cpu.max(node.free_cpu());
        rejected.most_free_memory = rejected.most_free_memory.max(node.free_memory());
        if node.free_cpu() < need.cpu_millis {
            rejected.cpu += 1;
            continue;
        }
        if node.free_memory() < need.memory_bytes {
            rejected.memory += 1;
            continue;
        }
        let room = node.room_after(need);
        let better = match best {
            None => true,
            Some((current, current_room)) => {
                (
                    room,
                    std::cmp::Reverse(node.allocations),
                    std::cmp::Reverse(node.id),
                ) > (
                    current_room,
                    std::cmp::Reverse(current.allocations),
                    std::cmp::Reverse(current.id),
                )
            }
        };
        if better {
            best = Some((node, room));
        }
    }
    best.map(|(node, _)| node.id)
        .ok_or_else(|| rejected.reason(&demand))
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
