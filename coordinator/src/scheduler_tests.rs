use super::*;

const GIB: u64 = 1 << 30;

struct Fixture {
    ids: Vec<NodeId>,
    labels: Vec<BTreeMap<String, String>>,
}

impl Fixture {
    fn new(n: usize) -> Self {
        Self {
            ids: (0..n).map(|_| NodeId::new()).collect(),
            labels: vec![BTreeMap::new(); n],
        }
    }

    fn nodes(&self) -> Vec<Candidate<'_>> {
        self.ids
            .iter()
            .zip(&self.labels)
            .map(|(id, labels)| Candidate {
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
    assert_eq!(place(&job(100, GIB / 4), &nodes), Ok(f.ids[1]));
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
    assert_eq!(place(&spec, &f.nodes()), Ok(f.ids[1]));
    spec.constraints.insert("gpu".into(), "yes".into());
    let err = place(&spec, &f.nodes()).unwrap_err();
    assert!(err.contains("2 without labels gpu=yes,zone=b"), "{err}");
}

#[test]
fn down_nodes_are_skipped() {
    let f = Fixture::new(2);
    let mut nodes = f.nodes();
    nodes[0].ready = false;
    assert_eq!(place(&job(100, 1), &nodes), Ok(f.ids[1]));
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
    while let Ok(id) = place(&spec, &nodes) {
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
