//! Placement: a pure function from (job, nodes) to a node, or to the reason no
//! node fits. No I/O, so every rule is tested exhaustively below.
//!
//! Filters: the node is ready, carries every required label, and has the CPU
//! and memory the job asks for left after what is already committed to it.
//! Score: the node with the most room left after placement (the smaller of its
//! free CPU and memory fractions), ties broken by fewer allocations and then by
//! id, so load spreads evenly and the result is deterministic.

use reef_proto::job::{GpuRequest, JobSpec, Resources};
use reef_proto::node::{Gpu, NodeResources};
use reef_proto::units::format_size;
use reef_proto::NodeId;
use std::collections::{BTreeMap, BTreeSet};

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
    pub gpus: &'a [Gpu],
    /// Indices of the node's GPUs given to live allocations.
    pub gpus_in_use: &'a BTreeSet<u32>,
}

impl Candidate<'_> {
    /// Free GPUs that satisfy `request`, lowest index first.
    fn matching_gpus(&self, request: &GpuRequest) -> Vec<u32> {
        let model = request.model.as_ref().map(|m| m.to_lowercase());
        self.gpus
            .iter()
            .filter(|g| !self.gpus_in_use.contains(&g.index))
            .filter(|g| {
                model
                    .as_ref()
                    .is_none_or(|m| g.model.to_lowercase().contains(m))
            })
            .filter(|g| request.min_vram_bytes.is_none_or(|min| g.vram_bytes >= min))
            .map(|g| g.index)
            .collect()
    }

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
    gpus: usize,
    most_free_cpu: u32,
    most_free_memory: u64,
}

impl Rejections {
    fn reason(&self, demand: &Demand<'_>) -> String {
        let total = self.not_ready + self.labels + self.cpu + self.memory + self.gpus;
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
        if self.gpus > 0 {
            let g = demand.gpus;
            let mut what = format!("{} free GPU(s)", g.count);
            if let Some(model) = &g.model {
                what.push_str(&format!(" matching {model:?}"));
            }
            if let Some(min) = g.min_vram_bytes {
                what.push_str(&format!(" with at least {} of memory", format_size(min)));
            }
            parts.push(format!("{} without {what}", self.gpus));
        }
        format!("no node fits: of {total} nodes, {}", parts.join("; "))
    }
}

/// What a piece of work asks of a node.
#[derive(Clone, Copy, Debug)]
pub struct Demand<'a> {
    pub resources: Resources,
    pub constraints: &'a BTreeMap<String, String>,
    pub gpus: &'a GpuRequest,
}

/// Where a piece of work goes: the node, and the GPUs given to it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub node: NodeId,
    pub gpus: Vec<u32>,
}

impl<'a> From<&'a JobSpec> for Demand<'a> {
    fn from(spec: &'a JobSpec) -> Self {
        Demand {
            resources: spec.resources,
            constraints: &spec.constraints,
            gpus: &spec.gpus,
        }
    }
}

/// Picks the node for `spec`, or says why none fits.
pub fn place(spec: &JobSpec, nodes: &[Candidate<'_>]) -> Result<Placement, String> {
    place_demand(spec.into(), nodes)
}

/// Picks the node for `demand`, or says why none fits.
pub fn place_demand(demand: Demand<'_>, nodes: &[Candidate<'_>]) -> Result<Placement, String> {
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
        if demand.gpus.count > 0
            && (node.matching_gpus(demand.gpus).len() as u32) < demand.gpus.count
        {
            rejected.gpus += 1;
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
    best.map(|(node, _)| Placement {
        node: node.id,
        gpus: node
            .matching_gpus(demand.gpus)
            .into_iter()
            .take(demand.gpus.count as usize)
            .collect(),
    })
    .ok_or_else(|| rejected.reason(&demand))
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
