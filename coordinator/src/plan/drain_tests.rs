//! Drain steps at chosen times.

use super::*;
use crate::plan::fixtures;
use proptest::prelude::*;
use reef_proto::alloc::AllocState;
use reef_proto::app::InstanceState;

fn alloc(node: NodeId, state: AllocState) -> Allocation {
    Allocation {
        id: AllocId::new(),
        job: JobId::new(),
        node,
        resources: Default::default(),
        gpus: Vec::new(),
        state,
        event_seq: 0,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

struct World {
    node: NodeId,
    instances: Vec<Instance>,
    allocs: Vec<Allocation>,
    stopping: HashSet<InstanceId>,
    stopped: HashSet<AllocId>,
}

impl World {
    fn new() -> Self {
        let node = NodeId::new();
        let elsewhere = NodeId::new();
        let web = fixtures::instance("web", 1, node, InstanceState::Healthy);
        let api = fixtures::instance("api", 1, node, InstanceState::Starting);
        let mut relief = fixtures::instance("web", 1, elsewhere, InstanceState::Starting);
        relief.relieves = Some(web.id);
        let other = fixtures::instance("web", 1, elsewhere, InstanceState::Healthy);
        Self {
            node,
            instances: vec![web, api, relief, other],
            allocs: vec![
                alloc(node, AllocState::Running { pid: 1 }),
                alloc(elsewhere, AllocState::Running { pid: 1 }),
            ],
            stopping: HashSet::new(),
            stopped: HashSet::new(),
        }
    }

    fn step(&self, now_ms: u64, booked: u32, running: u32, lost: bool) -> DrainStep {
        let instances: Vec<&Instance> = self.instances.iter().collect();
        let allocs: Vec<&Allocation> = self.allocs.iter().collect();
        step(&DrainView {
            node: self.node,
            deadline_ms: 1_000,
            now_ms,
            instances: &instances,
            allocs: &allocs,
            stopping: &self.stopping,
            stopped: &self.stopped,
            booked,
            running,
            lost,
        })
    }
}

#[test]
fn before_the_deadline_unrelieved_instances_get_a_relief_and_jobs_run_on() {
    let world = World::new();
    let step = world.step(999, 3, 3, false);
    assert_eq!(
        step.relieve,
        vec![world.instances[1].id],
        "web has its relief"
    );
    assert!(step.stop_instances.is_empty());
    assert!(step.stop_jobs.is_empty());
    assert!(!step.drained);
}

#[test]
fn a_failed_relief_is_replaced_on_a_later_step() {
    let mut world = World::new();
    world.instances[2].state = InstanceState::Failed {
        reason: "crashed".into(),
    };
    let mut relieve = world.step(10, 3, 3, false).relieve;
    relieve.sort();
    let mut expected = vec![world.instances[0].id, world.instances[1].id];
    expected.sort();
    assert_eq!(relieve, expected);
}

#[test]
fn an_instance_being_stopped_is_neither_relieved_nor_stopped_again() {
    let mut world = World::new();
    world.stopping.insert(world.instances[1].id);
    assert!(world.step(10, 3, 3, false).relieve.is_empty());
    assert!(world.step(1_000, 3, 3, false).stop_instances == vec![world.instances[0].id]);
}

#[test]
fn at_the_deadline_everything_left_is_stopped_once() {
    let mut world = World::new();
    let step = world.step(1_000, 3, 3, false);
    let mut instances = vec![world.instances[0].id, world.instances[1].id];
    instances.sort();
    assert_eq!(step.stop_instances, instances);
    assert_eq!(
        step.stop_jobs,
        vec![(world.allocs[0].job, world.allocs[0].id)]
    );
    assert!(step.relieve.is_empty());
    // The driver remembers what it asked; the next tick asks nothing again.
    world.stopping.extend(step.stop_instances);
    world.stopped.extend(step.stop_jobs.iter().map(|(_, a)| *a));
    let next = world.step(1_500, 3, 3, false);
    assert!(
        next.stop_instances.is_empty() && next.stop_jobs.is_empty(),
        "{next:?}"
    );
}

#[test]
fn drained_only_when_the_books_are_empty_and_the_node_runs_nothing_or_is_lost() {
    let world = World::new();
    assert!(
        !world.step(5, 1, 0, false).drained,
        "the books hold something"
    );
    assert!(
        !world.step(5, 0, 1, false).drained,
        "the node still runs something"
    );
    assert!(world.step(5, 0, 0, false).drained);
    assert!(
        world.step(5, 0, 4, true).drained,
        "a lost node's heartbeat is stale"
    );
}

proptest! {
    /// Whatever the time: a step never touches another node's work, never
    /// asks twice for what was asked, and relieves only before the deadline.
    #[test]
    fn a_step_stays_on_its_node_and_never_repeats_itself(
        now_ms in 0u64..2_000,
        states in proptest::collection::vec((any::<bool>(), fixtures::live_state(), any::<bool>()), 0..12),
        jobs in proptest::collection::vec((any::<bool>(), any::<bool>()), 0..12),
    ) {
        let node = NodeId::new();
        let other = NodeId::new();
        let mut stopping = HashSet::new();
        let instances: Vec<Instance> = states
            .iter()
            .map(|(here, state, asked)| {
                let i = fixtures::instance("web", 1, if *here { node } else { other }, state.clone());
                if *asked { stopping.insert(i.id); }
                i
            })
            .collect();
        let mut stopped = HashSet::new();
        let allocs: Vec<Allocation> = jobs
            .iter()
            .map(|(here, asked)| {
                let a = alloc(if *here { node } else { other }, AllocState::Running { pid: 1 });
                if *asked { stopped.insert(a.id); }
                a
            })
            .collect();
        let instance_refs: Vec<&Instance> = instances.iter().collect();
        let alloc_refs: Vec<&Allocation> = allocs.iter().collect();
        let out = step(&DrainView {
            node,
            deadline_ms: 1_000,
            now_ms,
            instances: &instance_refs,
            allocs: &alloc_refs,
            stopping: &stopping,
            stopped: &stopped,
            booked: 1,
            running: 1,
            lost: false,
        });
        let on_node = |id: InstanceId| instances.iter().any(|i| i.id == id && i.node == node);
        for id in out.relieve.iter().chain(&out.stop_instances) {
            prop_assert!(on_node(*id));
            prop_assert!(!stopping.contains(id));
        }
        for (_, alloc) in &out.stop_jobs {
            prop_assert!(allocs.iter().any(|a| a.id == *alloc && a.node == node));
            prop_assert!(!stopped.contains(alloc));
        }
        if now_ms >= 1_000 {
            prop_assert!(out.relieve.is_empty());
        } else {
            prop_assert!(out.stop_instances.is_empty() && out.stop_jobs.is_empty());
        }
    }
}
