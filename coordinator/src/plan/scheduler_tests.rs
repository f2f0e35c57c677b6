use super::*;

const GIB: u64 = 1 << 30;

struct Fixture {
    ids: Vec<NodeId>,
    labels: Vec<BTreeMap<String, String>>,
    gpus: Vec<Vec<Gpu>>,
    in_use: Vec<BTreeSet<u32>>,
}

impl Fixture {
    fn new(n: usize) -> Self {
        Self {
            ids: (0..n).map(|_| NodeId::new()).collect(),
            labels: vec![BTreeMap::new(); n],
            gpus: vec![Vec::new(); n],
            in_use: vec![BTreeSet::new(); n],
        }
    }

    fn nodes(&self) -> Vec<Candidate<'_>> {
        self.ids
            .iter()
            .zip(&self.labels)
            .zip(self.gpus.iter().zip(&self.in_use))
            .map(|((id, labels), (gpus, in_use))| Candidate {
                id: *id,
                name: "n",
                ready: true,
                labels,
                capacity: NodeResources {
                    cpu_millis: 2000,
                    memory_bytes: 4 * GIB,
                    disk_bytes: 0,
                },
                allocated: Resources {
                    cpu_millis: 0,
                    memory_bytes: 0,
                },
                allocations: 0,
                gpus,
                gpus_in_use: in_use,
                trust: TrustClass::Dedicated,
                eligible: true,
                job_network: true,
                distrust: 0.0,
            })
            .collect()
    }
}

fn job(cpu_millis: u32, memory_bytes: u64) -> JobSpec {
    let mut spec = JobSpec::new(vec!["true".into()]);
    spec.resources = Resources {
        cpu_millis,
        memory_bytes,
    };
    spec
}

#[test]
fn no_nodes_says_so() {
    assert_eq!(
        place(&job(100, 1), &[]),
        Err(NoFit {
            reason: "no nodes are registered".into()
        })
    );
}

fn spread<'a>(spec: &'a JobSpec, siblings: &'a BTreeMap<NodeId, u32>) -> Demand<'a> {
    Demand {
        strategy: Strategy::Spread,
        siblings,
        ..Demand::from(spec)
    }
}

#[test]
fn jobs_bin_pack_onto_the_fuller_node() {
    let f = Fixture::new(2);
    let mut nodes = f.nodes();
    nodes[0].allocated = Resources {
        cpu_millis: 1000,
        memory_bytes: GIB,
    };
    nodes[0].allocations = 3;
    assert_eq!(
        place(&job(100, GIB / 4), &nodes).map(|p| p.node),
        Ok(f.ids[0])
    );
}

#[test]
fn replicas_spread_onto_the_emptier_node() {
    let f = Fixture::new(2);
    let mut nodes = f.nodes();
    nodes[0].allocated = Resources {
        cpu_millis: 1000,
        memory_bytes: GIB,
    };
    nodes[0].allocations = 3;
    let spec = job(100, GIB / 4);
    let none = BTreeMap::new();
    assert_eq!(
        place_demand(spread(&spec, &none), &nodes, Scan::Full).map(|p| p.node),
        Ok(f.ids[1])
    );
}

#[test]
fn replicas_avoid_nodes_with_a_sibling_unless_nothing_else_fits() {
    let f = Fixture::new(3);
    let mut nodes = f.nodes();
    // Node 0 is the emptiest but already runs a replica.
    nodes[1].allocated.cpu_millis = 1500;
    nodes[2].allocated.cpu_millis = 1500;
    let spec = job(100, 1);
    let mut siblings = BTreeMap::from([(f.ids[0], 1)]);
    let first = place_demand(spread(&spec, &siblings), &nodes, Scan::Full).expect("fits");
    assert_ne!(first.node, f.ids[0]);
    siblings.insert(first.node, 1);
    let second = place_demand(spread(&spec, &siblings), &nodes, Scan::Full).expect("fits");
    assert!(![f.ids[0], first.node].contains(&second.node));
    siblings.insert(second.node, 1);
    // Every node has one now: the emptiest gets the second.
    let third = place_demand(spread(&spec, &siblings), &nodes, Scan::Full).expect("fits");
    assert_eq!(third.node, f.ids[0]);
}

#[test]
fn a_node_where_the_work_failed_is_avoided_when_another_fits() {
    let f = Fixture::new(2);
    let nodes = f.nodes();
    let spec = job(100, 1);
    let chosen = place(&spec, &nodes).expect("fits").node;
    let failed = BTreeSet::from([chosen]);
    let demand = Demand {
        failed_on: &failed,
        ..Demand::from(&spec)
    };
    let retry = place_demand(demand, &nodes, Scan::Full).expect("fits");
    assert_ne!(retry.node, chosen);
    // With the other node down, the failed one is still used.
    let mut only = f.nodes();
    only.retain(|n| n.id == chosen);
    assert_eq!(
        place_demand(demand, &only, Scan::Full).map(|p| p.node),
        Ok(chosen)
    );
}

#[test]
fn copies_of_a_replicated_job_never_share_a_node() {
    let f = Fixture::new(3);
    let nodes = f.nodes();
    let spec = job(100, 1);
    let mut taken = BTreeSet::new();
    for _ in 0..3 {
        let demand = Demand {
            exclude: &taken,
            ..Demand::from(&spec)
        };
        let placed = place_demand(demand, &nodes, Scan::Full).expect("fits");
        assert!(taken.insert(placed.node), "a node got two copies");
    }
    let demand = Demand {
        exclude: &taken,
        ..Demand::from(&spec)
    };
    let err = place_demand(demand, &nodes, Scan::Full)
        .expect_err("no fourth node")
        .reason;
    assert!(
        err.contains("3 already ran a copy of this replicated job"),
        "{err}"
    );
}

#[test]
fn a_node_whose_results_disagreed_is_placed_last() {
    let f = Fixture::new(2);
    let spec = job(100, 1);
    let first = place(&spec, &f.nodes()).expect("fits").node;
    let mut nodes = f.nodes();
    for node in &mut nodes {
        if node.id == first {
            node.distrust = 0.5;
        }
    }
    assert_ne!(place(&spec, &nodes).expect("fits").node, first);
    // It still takes work when it is the only node that fits.
    nodes.retain(|n| n.id == first);
    assert_eq!(place(&spec, &nodes).map(|p| p.node), Ok(first));
}

#[test]
fn trust_class_filters_and_is_explained() {
    let f = Fixture::new(2);
    let mut nodes = f.nodes();
    nodes[1].trust = TrustClass::Contributed;
    let mut spec = job(100, 1);
    spec.trust = Some(TrustClass::Contributed);
    assert_eq!(place(&spec, &nodes).map(|p| p.node), Ok(f.ids[1]));
    spec.trust = Some(TrustClass::Dedicated);
    assert_eq!(place(&spec, &nodes).map(|p| p.node), Ok(f.ids[0]));
    nodes[0].trust = TrustClass::Contributed;
    let err = place(&spec, &nodes).unwrap_err().reason;
    assert!(err.contains("2 not dedicated"), "{err}");
    assert_eq!(crate::plan::metrics::pending_cause(&err), "trust");
}

#[test]
fn ineligible_nodes_get_no_new_work() {
    let f = Fixture::new(2);
    let mut nodes = f.nodes();
    nodes[0].eligible = false;
    assert_eq!(place(&job(100, 1), &nodes).map(|p| p.node), Ok(f.ids[1]));
    nodes[1].eligible = false;
    let err = place(&job(100, 1), &nodes).unwrap_err().reason;
    assert!(err.contains("2 draining, paused or ineligible"), "{err}");
    assert_eq!(crate::plan::metrics::pending_cause(&err), "ineligible");
}

#[test]
fn sampling_still_finds_the_one_node_that_fits() {
    let mut f = Fixture::new(1000);
    f.labels[737].insert("gpu".into(), "yes".into());
    let nodes = f.nodes();
    let mut spec = job(100, 1);
    spec.constraints.insert("gpu".into(), "yes".into());
    for start in [0, 500, 736, 738, 999, 123_456] {
        assert_eq!(
            place_demand(Demand::from(&spec), &nodes, Scan::Sampled { start }).map(|p| p.node),
            Ok(f.ids[737])
        );
    }
    spec.constraints.insert("zone".into(), "b".into());
    let err = place_demand(Demand::from(&spec), &nodes, Scan::Sampled { start: 42 })
        .unwrap_err()
        .reason;
    assert!(err.contains("of 1000 nodes, 1000 without labels"), "{err}");
}

#[test]
fn sampled_placements_cover_the_cluster_and_never_overcommit() {
    let f = Fixture::new(200);
    let mut nodes = f.nodes();
    let spec = job(500, GIB);
    let siblings = BTreeMap::new();
    let mut starts = 0usize;
    let mut placed = 0;
    while let Ok(p) = place_demand(
        spread(&spec, &siblings),
        &nodes,
        Scan::Sampled { start: starts },
    ) {
        starts = starts.wrapping_add(0x9E37_79B9);
        let node = nodes.iter_mut().find(|n| n.id == p.node).expect("known");
        node.allocated.cpu_millis += 500;
        node.allocated.memory_bytes += GIB;
        node.allocations += 1;
        assert!(node.allocated.cpu_millis <= node.capacity.cpu_millis);
        assert!(node.allocated.memory_bytes <= node.capacity.memory_bytes);
        placed += 1;
    }
    assert_eq!(placed, 200 * 4, "every node filled: 4 of 500m in 2000m");
}

#[test]
fn too_much_memory_is_explained() {
    let f = Fixture::new(2);
    let err = place(&job(100, 64 * GIB), &f.nodes()).unwrap_err().reason;
    assert!(err.contains("2 with too little free memory"), "{err}");
    assert!(err.contains("needs 64G"), "{err}");
    assert_eq!(crate::plan::metrics::pending_cause(&err), "memory");
}

#[test]
fn labels_must_all_match() {
    let mut f = Fixture::new(2);
    f.labels[1].insert("zone".into(), "b".into());
    f.labels[1].insert("disk".into(), "ssd".into());
    let mut spec = job(100, 1);
    spec.constraints.insert("zone".into(), "b".into());
    assert_eq!(place(&spec, &f.nodes()).map(|p| p.node), Ok(f.ids[1]));
    spec.constraints.insert("gpu".into(), "yes".into());
    let err = place(&spec, &f.nodes()).unwrap_err().reason;
    assert!(err.contains("2 without labels gpu=yes,zone=b"), "{err}");
    assert_eq!(crate::plan::metrics::pending_cause(&err), "labels");
}

#[test]
fn down_nodes_are_skipped() {
    let f = Fixture::new(2);
    let mut nodes = f.nodes();
    nodes[0].ready = false;
    assert_eq!(place(&job(100, 1), &nodes).map(|p| p.node), Ok(f.ids[1]));
    nodes[1].ready = false;
    assert!(place(&job(100, 1), &nodes)
        .unwrap_err()
        .reason
        .contains("2 down"));
}

#[test]
fn committed_resources_are_never_exceeded() {
    // Place until nothing fits, committing each placement: no node ever goes
    // over its capacity, and every node gets work.
    let f = Fixture::new(3);
    let mut nodes = f.nodes();
    let spec = job(300, GIB / 2);
    let mut placed = 0;
    while let Ok(Placement { node: id, .. }) = place(&spec, &nodes) {
        let node = nodes.iter_mut().find(|n| n.id == id).expect("known node");
        node.allocated.cpu_millis += spec.resources.cpu_millis;
        node.allocated.memory_bytes += spec.resources.memory_bytes;
        node.allocations += 1;
        assert!(node.allocated.cpu_millis <= node.capacity.cpu_millis);
        assert!(node.allocated.memory_bytes <= node.capacity.memory_bytes);
        placed += 1;
    }
    assert_eq!(placed, 18, "6 per node fit by cpu (2000/300)");
    assert!(nodes.iter().all(|n| n.allocations == 6));
}

#[test]
fn placement_is_deterministic() {
    let f = Fixture::new(5);
    let a = place(&job(100, 1), &f.nodes());
    let b = place(&job(100, 1), &f.nodes());
    assert_eq!(a, b);
}

fn rig() -> Vec<Gpu> {
    (0..2)
        .map(|index| Gpu {
            index,
            vendor: "NVIDIA".into(),
            model: "NVIDIA GeForce RTX 4090".into(),
            vram_bytes: 24 * GIB,
        })
        .collect()
}

#[test]
fn gpus_are_given_by_index_and_never_twice() {
    let mut f = Fixture::new(2);
    f.gpus[1] = rig();
    let mut spec = job(100, 1);
    spec.gpus.count = 1;
    let first = place(&spec, &f.nodes()).expect("a GPU node");
    assert_eq!(
        first,
        Placement {
            node: f.ids[1],
            gpus: vec![0]
        }
    );
    f.in_use[1].insert(0);
    let second = place(&spec, &f.nodes()).expect("the other GPU");
    assert_eq!(second.gpus, vec![1]);
    f.in_use[1].insert(1);
    let err = place(&spec, &f.nodes()).expect_err("no free GPU").reason;
    assert!(err.contains("2 without 1 free GPU"), "{err}");
    assert_eq!(crate::plan::metrics::pending_cause(&err), "gpus");
}

#[test]
fn gpu_model_and_memory_filter() {
    let mut f = Fixture::new(1);
    f.gpus[0] = rig();
    let mut spec = job(100, 1);
    spec.gpus.count = 2;
    spec.gpus.model = Some("rtx 4090".into());
    assert_eq!(place(&spec, &f.nodes()).expect("fits").gpus, vec![0, 1]);
    spec.gpus.model = Some("A100".into());
    assert!(place(&spec, &f.nodes())
        .expect_err("no A100")
        .reason
        .contains("matching \"A100\""));
    spec.gpus.model = None;
    spec.gpus.min_vram_bytes = Some(48 * GIB);
    assert!(place(&spec, &f.nodes())
        .expect_err("too small")
        .reason
        .contains("at least 48G"));
}

#[test]
fn a_job_that_asks_for_the_network_goes_only_where_jobs_may_use_it() {
    let fixture = Fixture::new(2);
    let mut nodes = fixture.nodes();
    nodes[0].job_network = false;
    nodes[1].job_network = false;
    let mut spec = job(100, GIB);
    spec.network = true;
    let reason = place(&spec, &nodes).expect_err("nowhere").reason;
    assert!(
        reason.contains("2 not letting jobs use the network"),
        "{reason}"
    );
    assert!(reason.contains("--allow-network"), "{reason}");
    nodes[1].job_network = true;
    assert_eq!(place(&spec, &nodes).expect("placed").node, fixture.ids[1]);
    // A job that does not ask goes anywhere.
    nodes[1].job_network = false;
    spec.network = false;
    assert!(place(&spec, &nodes).is_ok());
}
