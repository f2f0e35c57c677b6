//! Placement: a pure function from (work, nodes) to a node, or to the reason
//! no node fits. No I/O, so every rule is tested exhaustively beside it.
//!
//! Filters: the node is ready and eligible, carries every required label, is
//! of the trust class asked for, has not run another copy of the same
//! replicated job, and has the CPU, memory and GPUs asked for left after
//! what is already committed to it.
//!
//! Score: by [`Strategy`]: bin-packing (batch jobs) prefers the node left
//! fullest, so whole machines stay free for big work; spreading (app replicas)
//! prefers the node left emptiest. Each replica of the same app already on a
//! node costs a whole point (anti-affinity: a node without one always wins if
//! it fits), a node where the work failed before costs half a point, and a
//! node whose results disagreed with the accepted result of replicated jobs
//! costs up to a whole point, its share of disagreements among its verdicts. Ties
//! go to fewer allocations, then to the lower id, so results are deterministic.
//!
//! Sampling: with many nodes, scoring all of them for every placement is
//! wasted work. Above [`FULL_SCAN_MAX`] nodes the scan starts at a caller-chosen
//! offset and stops once it has scored about log2(n) feasible nodes (at least
//! 2, the power of two choices) and the best of them carries no penalty.
//! Infeasible nodes do not count, and when nothing fits every node has been
//! looked at, so the reason given is complete.

use reef_proto::job::{GpuRequest, JobSpec, Resources};
use reef_proto::node::{Gpu, NodeResources, TrustClass};
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
    pub trust: TrustClass,
    /// False while the node is drained or marked ineligible: no new work.
    pub eligible: bool,
    /// Whether jobs that ask for the network may run there.
    pub job_network: bool,
    /// The share of its replicated results that disagreed with the
    /// accepted one, in [0, 1] (0 for a node never checked).
    pub distrust: f64,
}

impl Candidate<'_> {
    /// Free GPUs that satisfy `request`, lowest index first.
    pub fn matching_gpus(&self, request: &GpuRequest) -> Vec<u32> {
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
    ineligible: usize,
    trust: usize,
    network: usize,
    replica: usize,
    labels: usize,
    cpu: usize,
    memory: usize,
    gpus: usize,
    most_free_cpu: u32,
    most_free_memory: u64,
}

impl Rejections {
    fn reason(&self, demand: &Demand<'_>) -> String {
        let total = self.not_ready
            + self.ineligible
            + self.trust
            + self.network
            + self.replica
            + self.labels
            + self.cpu
            + self.memory
            + self.gpus;
        if total == 0 {
            return "no nodes are registered".to_string();
        }
        let mut parts = Vec::new();
        if self.not_ready > 0 {
            parts.push(format!("{} down", self.not_ready));
        }
        if self.ineligible > 0 {
            parts.push(format!(
                "{} draining, paused or ineligible",
                self.ineligible
            ));
        }
        if self.trust > 0 {
            let wanted = demand.trust.map_or("any", TrustClass::name);
            parts.push(format!("{} not {wanted}", self.trust));
        }
        if self.network > 0 {
            parts.push(format!(
                "{} not letting jobs use the network (their owners did not --allow-network)",
                self.network
            ));
        }
        if self.replica > 0 {
            parts.push(format!(
                "{} already ran a copy of this replicated job",
                self.replica
            ));
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
            let gpus = if g.count == 1 { "GPU" } else { "GPUs" };
            let mut what = format!("{} free {gpus}", g.count);
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

/// How to choose among the nodes that fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Fill nodes up before using emptier ones (batch jobs).
    BinPack,
    /// Keep load even across nodes (app replicas).
    Spread,
}

/// What a piece of work asks of a node.
#[derive(Clone, Copy, Debug)]
pub struct Demand<'a> {
    pub resources: Resources,
    pub constraints: &'a BTreeMap<String, String>,
    pub gpus: &'a GpuRequest,
    /// Only nodes of this class (None: any).
    pub trust: Option<TrustClass>,
    /// Only nodes that let jobs use the network.
    pub network: bool,
    pub strategy: Strategy,
    /// Nodes already running replicas of the same app, with how many.
    pub siblings: &'a BTreeMap<NodeId, u32>,
    /// Nodes where this work failed before.
    pub failed_on: &'a BTreeSet<NodeId>,
    /// Nodes it must not go to: those that ran another copy of the same
    /// replicated job.
    pub exclude: &'a BTreeSet<NodeId>,
}

/// Where a piece of work goes: the node, and the GPUs given to it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub node: NodeId,
    pub gpus: Vec<u32>,
}

/// Up to this many nodes, every node is scored.
pub const FULL_SCAN_MAX: usize = 64;

/// Penalty for each replica of the same app on a node.
const SIBLING_PENALTY: f64 = 1.0;
/// Penalty for a node where the work failed before.
const FAILED_PENALTY: f64 = 0.5;
/// Penalty for a node all of whose replicated results disagreed.
const DISTRUST_PENALTY: f64 = 1.0;

static NO_SIBLINGS: BTreeMap<NodeId, u32> = BTreeMap::new();
static NO_FAILURES: BTreeSet<NodeId> = BTreeSet::new();

impl<'a> From<&'a JobSpec> for Demand<'a> {
    fn from(spec: &'a JobSpec) -> Self {
        Demand {
            resources: spec.resources,
            constraints: &spec.constraints,
            gpus: &spec.gpus,
            trust: spec.trust,
            network: spec.network,
            strategy: Strategy::BinPack,
            siblings: &NO_SIBLINGS,
            failed_on: &NO_FAILURES,
            exclude: &NO_FAILURES,
        }
    }
}

/// How many nodes to score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// Every node.
    Full,
    /// About log2(n) feasible nodes from offset `start` (pass a random or
    /// rotating number); every node when there are at most [`FULL_SCAN_MAX`].
    Sampled { start: usize },
}

/// Why no node can take a demand, said for people: "of 2 nodes, 2 with
/// too little free memory (needs 64T, most free 23.5G)". A decision, not a
/// failure: it is what a pending job shows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct NoFit {
    pub reason: String,
}

/// Picks the node for `spec` among all `nodes`, or says why none fits.
pub fn place(spec: &JobSpec, nodes: &[Candidate<'_>]) -> Result<Placement, NoFit> {
    place_demand(spec.into(), nodes, Scan::Full)
}

/// Picks the node for `demand`, or says why none fits.
pub fn place_demand(
    demand: Demand<'_>,
    nodes: &[Candidate<'_>],
    scan: Scan,
) -> Result<Placement, NoFit> {
    let n = nodes.len();
    let (start, enough) = match scan {
        Scan::Sampled { start } if n > FULL_SCAN_MAX => {
            (start % n, (usize::BITS - n.leading_zeros()) as usize)
        }
        _ => (0, usize::MAX),
    };
    let mut rejected = Rejections::default();
    let mut best: Option<(&Candidate<'_>, Score)> = None;
    let mut feasible = 0;
    for i in 0..n {
        let node = &nodes[(start + i) % n];
        if !fits(node, &demand, &mut rejected) {
            continue;
        }
        feasible += 1;
        let score = Score::of(node, &demand);
        if best.as_ref().is_none_or(|(_, current)| score > *current) {
            best = Some((node, score));
        }
        if feasible >= enough && best.as_ref().is_some_and(|(_, s)| s.penalty == 0.0) {
            break;
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
    .ok_or_else(|| NoFit {
        reason: rejected.reason(&demand),
    })
}

/// Whether `node` can take `demand`; if not, counts why.
fn fits(node: &Candidate<'_>, demand: &Demand<'_>, rejected: &mut Rejections) -> bool {
    let need = &demand.resources;
    if !node.ready {
        rejected.not_ready += 1;
        return false;
    }
    if !node.eligible {
        rejected.ineligible += 1;
        return false;
    }
    if demand.trust.is_some_and(|trust| trust != node.trust) {
        rejected.trust += 1;
        return false;
    }
    if demand.network && !node.job_network {
        rejected.network += 1;
        return false;
    }
    if demand.exclude.contains(&node.id) {
        rejected.replica += 1;
        return false;
    }
    if !demand
        .constraints
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
    {
        rejected.labels += 1;
        return false;
    }
    rejected.most_free_cpu = rejected.most_free_cpu.max(node.free_cpu());
    rejected.most_free_memory = rejected.most_free_memory.max(node.free_memory());
    if node.free_cpu() < need.cpu_millis {
        rejected.cpu += 1;
        return false;
    }
    if node.free_memory() < need.memory_bytes {
        rejected.memory += 1;
        return false;
    }
    if demand.gpus.count > 0 && (node.matching_gpus(demand.gpus).len() as u32) < demand.gpus.count {
        rejected.gpus += 1;
        return false;
    }
    true
}

/// How good a feasible node is; higher is better.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Score {
    /// Anti-affinity and failure penalties (0 for a clean node).
    penalty: f64,
    /// How well the node fits the strategy, in [0, 1].
    fit: f64,
    allocations: u32,
    id: NodeId,
}

impl Score {
    fn of(node: &Candidate<'_>, demand: &Demand<'_>) -> Self {
        let room = node.room_after(&demand.resources);
        let fit = match demand.strategy {
            Strategy::Spread => room,
            Strategy::BinPack => 1.0 - room,
        };
        let siblings = demand.siblings.get(&node.id).copied().unwrap_or(0);
        let mut penalty = f64::from(siblings) * SIBLING_PENALTY;
        if demand.failed_on.contains(&node.id) {
            penalty += FAILED_PENALTY;
        }
        penalty += node.distrust.clamp(0.0, 1.0) * DISTRUST_PENALTY;
        Self {
            penalty,
            fit,
            allocations: node.allocations,
            id: node.id,
        }
    }

    fn value(&self) -> f64 {
        self.fit - self.penalty
    }
}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        let ours = (
            self.value(),
            std::cmp::Reverse(self.allocations),
            std::cmp::Reverse(self.id),
        );
        let theirs = (
            other.value(),
            std::cmp::Reverse(other.allocations),
            std::cmp::Reverse(other.id),
        );
        ours.partial_cmp(&theirs)
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
