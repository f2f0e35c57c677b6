//! Placement throughput of the pure scheduler on simulated clusters of 1,000
//! and 10,000 nodes, sampled scan against the exhaustive scan as the peer.
//!
//! The cluster is mixed hardware: 2 to 64 cores, 4 to 256 GiB, a tenth of the
//! nodes GPU rigs, a fifth contributed, three zones. The work is a mix of
//! small batch jobs (bin-packed), app replicas (spread, with anti-affinity
//! among the replicas of each app) and GPU jobs. Every placement is committed
//! to its node before the next one (CPU, memory and allocation count), so
//! later placements see a fuller cluster, as a real scheduler does.
//!
//! Run: `cargo bench -p reef-coordinator --bench scheduler`.

use reef_coordinator::scheduler::{place_demand, Candidate, Demand, Scan, Strategy};
use reef_proto::job::{GpuRequest, Resources};
use reef_proto::node::{Gpu, NodeResources, TrustClass};
use reef_proto::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

const GIB: u64 = 1 << 30;
/// Placements measured per run.
const PLACEMENTS: usize = 50_000;

/// A tiny deterministic generator (xorshift), so every run sees the same cluster and work.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Node {
    id: NodeId,
    labels: BTreeMap<String, String>,
    capacity: NodeResources,
    gpus: Vec<Gpu>,
    trust: TrustClass,
}

fn cluster(n: usize, rng: &mut Rng) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let cores = [2u32, 4, 8, 16, 32, 64][rng.below(6) as usize];
            let gpus = if i % 10 == 0 {
                (0..1 + rng.below(8) as u32)
                    .map(|index| Gpu {
                        index,
                        vendor: "NVIDIA".into(),
                        model: ["NVIDIA GeForce RTX 4090", "NVIDIA A100-SXM4-80GB"]
                            [rng.below(2) as usize]
                            .into(),
                        vram_bytes: 24 * GIB,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Node {
                id: NodeId::new(),
                labels: BTreeMap::from([(
                    "zone".to_string(),
                    ["a", "b", "c"][rng.below(3) as usize].to_string(),
                )]),
                capacity: NodeResources {
                    cpu_millis: cores * 1000,
                    memory_bytes: u64::from(cores) * 4 * GIB,
                    disk_bytes: 0,
                },
                gpus,
                trust: if i % 5 == 0 {
                    TrustClass::Contributed
                } else {
                    TrustClass::Dedicated
                },
            }
        })
        .collect()
}

/// One piece of work: what it needs, and which app it belongs to (if a replica).
struct Work {
    resources: Resources,
    constraints: BTreeMap<String, String>,
    gpus: GpuRequest,
    trust: Option<TrustClass>,
    strategy: Strategy,
    app: Option<usize>,
}

fn workload(count: usize, rng: &mut Rng) -> Vec<Work> {
    (0..count)
        .map(|_| {
            let kind = rng.below(10);
            let resources = Resources {
                cpu_millis: 100 + rng.below(900) as u32,
                memory_bytes: (64 << 20) + rng.below(GIB),
            };
            match kind {
                0..=6 => Work {
                    resources,
                    constraints: BTreeMap::new(),
                    gpus: GpuRequest::default(),
                    trust: None,
                    strategy: Strategy::BinPack,
                    app: None,
                },
                7 | 8 => Work {
                    resources,
                    constraints: BTreeMap::from([(
                        "zone".to_string(),
                        ["a", "b", "c"][rng.below(3) as usize].to_string(),
                    )]),
                    gpus: GpuRequest::default(),
                    trust: Some(TrustClass::Dedicated),
                    strategy: Strategy::Spread,
                    app: Some(rng.below(200) as usize),
                },
                _ => Work {
                    resources,
                    constraints: BTreeMap::new(),
                    gpus: GpuRequest {
                        count: 1,
                        model: None,
                        min_vram_bytes: Some(16 * GIB),
                    },
                    trust: None,
                    strategy: Strategy::BinPack,
                    app: None,
                },
            }
        })
        .collect()
}

struct Outcome {
    placed: usize,
    unplaced: usize,
    per_second: f64,
}

fn run(nodes: &[Node], work: &[Work], sampled: bool) -> Outcome {
    let no_gpus_in_use = BTreeSet::new();
    let mut candidates: Vec<Candidate<'_>> = nodes
        .iter()
        .map(|n| Candidate {
            id: n.id,
            name: "node",
            ready: true,
            labels: &n.labels,
            capacity: n.capacity,
            allocated: Resources {
                cpu_millis: 0,
                memory_bytes: 0,
            },
            allocations: 0,
            gpus: &n.gpus,
            gpus_in_use: &no_gpus_in_use,
            trust: n.trust,
            eligible: true,
            job_network: true,
            distrust: 0.0,
        })
        .collect();
    let index: BTreeMap<NodeId, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let mut siblings: Vec<BTreeMap<NodeId, u32>> = vec![BTreeMap::new(); 200];
    let no_failures = BTreeSet::new();
    let empty = BTreeMap::new();
    let (mut placed, mut unplaced) = (0, 0);
    let started = Instant::now();
    for (i, w) in work.iter().enumerate() {
        let demand = Demand {
            resources: w.resources,
            constraints: &w.constraints,
            gpus: &w.gpus,
            trust: w.trust,
            network: false,
            strategy: w.strategy,
            siblings: w.app.map_or(&empty, |app| &siblings[app]),
            failed_on: &no_failures,
            exclude: &no_failures,
        };
        let scan = if sampled {
            Scan::Sampled {
                start: i.wrapping_mul(0x9E37_79B9),
            }
        } else {
            Scan::Full
        };
        match place_demand(demand, &candidates, scan) {
            Ok(placement) => {
                let node = &mut candidates[index[&placement.node]];
                node.allocated.cpu_millis += w.resources.cpu_millis;
                node.allocated.memory_bytes += w.resources.memory_bytes;
                node.allocations += 1;
                if let Some(app) = w.app {
                    *siblings[app].entry(placement.node).or_default() += 1;
                }
                placed += 1;
            }
            Err(_) => unplaced += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Outcome {
        placed,
        unplaced,
        per_second: work.len() as f64 / elapsed,
    }
}

fn main() {
    println!("scheduler placement throughput ({PLACEMENTS} placements per run, each committed)");
    println!(
        "{:>7}  {:>16}  {:>16}  {:>7}  {:>14}",
        "nodes", "sampled (/s)", "full scan (/s)", "ratio", "placed/unplaced"
    );
    for n in [1_000usize, 10_000] {
        let mut rng = Rng(0x5EED_0000 + n as u64);
        let nodes = cluster(n, &mut rng);
        let work = workload(PLACEMENTS, &mut rng);
        // Warm up once, then measure.
        run(&nodes, &work[..1000], true);
        let sampled = run(&nodes, &work, true);
        let full = run(&nodes, &work, false);
        println!(
            "{n:>7}  {:>16.0}  {:>16.0}  {:>6.1}x  {:>7}/{}",
            sampled.per_second,
            full.per_second,
            sampled.per_second / full.per_second,
            sampled.placed,
            sampled.unplaced,
        );
        println!(
            "{:>7}  full scan placed/unplaced: {}/{}",
            "", full.placed, full.unplaced
        );
    }
}
