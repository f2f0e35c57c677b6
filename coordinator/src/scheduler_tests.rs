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
        Err("no nodes are registered".into())
    );
}

#[test]
fn picks_the_emptier_node() {
    let f = Fixture::new(2);
    let mut nodes = f.nodes();
    nodes[0].allocated = Resources {
        cpu_millis: 1000,
        memory_bytes: GIB,
    };
    nodes[0].allocations = 3;
    assert_eq!(
        place(&job(100, GIB / 4), &nodes).map(|p| p.node),
        Ok(f.ids[1])
    );
}

#[test]
fn too_much_memory_is_explained() {
    let f = Fixture::new(2);
    let err = place(&job(100, 64 * GIB), &f.nodes()).unwrap_err();
    assert!(err.contains("2 with too little free memory"), "{err}");
    assert!(err.contains("needs 64G"), "{err}");
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
    let err = place(&spec, &f.nodes()).unwrap_err();
    assert!(err.contains("2 without labels gpu=yes,zone=b"), "{err}");
}

#[test]
fn down_nodes_are_skipped() {
    let f = Fixture::new(2);
    let mut nodes = f.nodes();
    nodes[0].ready = false;
    assert_eq!(place(&job(100, 1), &nodes).map(|p| p.node), Ok(f.ids[1]));
    nodes[1].ready = false;
    assert!(place(&job(100, 1), &nodes).unwrap_err().contains("2 down"));
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
    let err = place(&spec, &f.nodes()).expect_err("no free GPU");
    assert!(err.contains("2 without 1 free GPU(s)"), "{err}");
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
        .contains("matching \"A100\""));
    spec.gpus.model = None;
    spec.gpus.min_vram_bytes = Some(48 * GIB);
    assert!(place(&spec, &f.nodes())
        .expect_err("too small")
        .contains("at least 48G"));
}
