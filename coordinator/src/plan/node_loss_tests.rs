//! A lost node's work, decided without NATS.

use super::*;
use crate::plan::fixtures;
use crate::plan::transitions::job_after;
use proptest::prelude::*;
use reef_proto::job::{JobRecord, JobSpec, JobState};
use reef_proto::JobId;

fn alloc(node: NodeId, state: AllocState) -> Allocation {
    Allocation {
        id: AllocId::new(),
        job: JobId::new(),
        node,
        resources: Default::default(),
        gpus: Vec::new(),
        state,
        event_seq: 3,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

fn every_alloc_state() -> Vec<AllocState> {
    vec![
        AllocState::Assigned,
        AllocState::Accepted,
        AllocState::Starting,
        AllocState::Running { pid: 1 },
        AllocState::Stopping,
        AllocState::Exited { code: 0 },
        AllocState::Stopped,
        AllocState::Failed { reason: "x".into() },
        AllocState::Lost { reason: "y".into() },
    ]
}

#[test]
fn every_live_allocation_and_instance_on_the_node_ends_and_is_stopped() {
    let (lost, other) = (NodeId::new(), NodeId::new());
    let allocs: Vec<Allocation> = every_alloc_state()
        .into_iter()
        .flat_map(|s| [alloc(lost, s.clone()), alloc(other, s)])
        .collect();
    let instances = [
        fixtures::instance("web", 1, lost, InstanceState::Healthy),
        fixtures::instance("api", 1, lost, InstanceState::Starting),
        fixtures::instance("web", 1, other, InstanceState::Healthy),
        fixtures::instance("db", 1, lost, InstanceState::Failed { reason: "x".into() }),
    ];
    let loss = plan(
        lost,
        &allocs.iter().collect::<Vec<_>>(),
        &instances.iter().collect::<Vec<_>>(),
    );
    let live_here: Vec<AllocId> = {
        let mut ids: Vec<AllocId> = allocs
            .iter()
            .filter(|a| a.node == lost && !a.state.is_terminal())
            .map(|a| a.id)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(loss.allocs, live_here);
    assert_eq!(live_here.len(), 5, "assigned to stopping");
    let mut instances_here = vec![instances[0].id, instances[1].id];
    instances_here.sort();
    assert_eq!(loss.instances, instances_here);
    assert_eq!(
        loss.apps,
        BTreeSet::from(["web".to_string(), "api".to_string()])
    );
    assert_eq!(loss.stops.len(), 7);
    for id in &loss.allocs {
        assert!(loss
            .stops
            .iter()
            .any(|(msg, c)| *msg == format!("stop-{id}")
                && matches!(c, AgentCommand::Stop { alloc, .. } if alloc == id)));
    }
    for id in &loss.instances {
        assert!(loss.stops.iter().any(|(msg, c)| *msg == format!("stop-{id}")
            && matches!(c, AgentCommand::StopInstance { instance, forget_app: false } if instance == id)));
    }
}

#[test]
fn a_node_with_nothing_live_loses_nothing() {
    let node = NodeId::new();
    let done = alloc(node, AllocState::Exited { code: 1 });
    assert_eq!(plan(node, &[&done], &[]), Loss::default());
}

#[test]
fn a_live_allocation_ends_lost_with_the_reason_once() {
    let node = NodeId::new();
    for state in every_alloc_state() {
        let a = alloc(node, state.clone());
        match lost_alloc(&a, "node n1 stopped responding", 42) {
            Some((lost, event)) => {
                assert!(!state.is_terminal(), "{state:?}");
                let why = AllocState::Lost {
                    reason: "node n1 stopped responding".into(),
                };
                assert_eq!(lost.state, why);
                assert_eq!(lost.updated_at_ms, 42);
                assert_eq!(event.state, why);
                assert_eq!((event.alloc, event.job, event.node), (a.id, a.job, node));
                assert_eq!(event.seq, a.event_seq);
                assert!(
                    lost_alloc(&lost, "again", 43).is_none(),
                    "terminal is final"
                );
            }
            None => assert!(state.is_terminal(), "{state:?}"),
        }
    }
}

#[test]
fn a_live_instance_ends_lost_and_an_ended_one_stays() {
    let node = NodeId::new();
    let live = fixtures::instance("web", 1, node, InstanceState::Healthy);
    let lost = lost_instance(&live, "gone", 7).expect("live");
    assert_eq!(
        lost.state,
        InstanceState::Lost {
            reason: "gone".into()
        }
    );
    assert_eq!(lost.updated_at_ms, 7);
    assert!(lost_instance(&lost, "again", 8).is_none());
    let stopped = fixtures::instance("web", 1, node, InstanceState::Failed { reason: "x".into() });
    assert!(lost_instance(&stopped, "gone", 7).is_none());
}

#[test]
fn the_job_of_a_lost_allocation_is_retried_only_if_it_asked() {
    let node = NodeId::new();
    for retries in [0, 2] {
        let a = alloc(node, AllocState::Running { pid: 1 });
        let mut spec = JobSpec::new(vec!["true".into()]);
        spec.retries = retries;
        let mut job: JobRecord = fixtures::job(spec);
        job.id = a.job;
        job.alloc = Some(a.id);
        job.node = Some(node);
        job.state = JobState::Running;
        let (lost, event) = lost_alloc(&a, "node n1 stopped responding", 9).expect("live");
        let next = job_after(&job, &lost, &event).expect("the job changes");
        match retries {
            0 => assert!(
                matches!(next.state, JobState::Lost { .. }),
                "{:?}",
                next.state
            ),
            _ => assert!(
                matches!(next.state, JobState::Pending { .. }),
                "{:?}",
                next.state
            ),
        }
    }
}

proptest! {
    /// Whatever runs where: a loss touches only the lost node's live work,
    /// each piece once, and stops each.
    #[test]
    fn a_loss_touches_each_live_piece_of_the_node_once(
        placements in proptest::collection::vec((0usize..3, 0usize..9), 0..40),
        instance_nodes in proptest::collection::vec((0usize..3, fixtures::live_state()), 0..20),
    ) {
        let nodes = [NodeId::new(), NodeId::new(), NodeId::new()];
        let states = every_alloc_state();
        let allocs: Vec<Allocation> = placements
            .iter()
            .map(|(n, s)| alloc(nodes[*n], states[*s].clone()))
            .collect();
        let instances: Vec<Instance> = instance_nodes
            .iter()
            .map(|(n, s)| fixtures::instance("app", 1, nodes[*n], s.clone()))
            .collect();
        let loss = plan(
            nodes[0],
            &allocs.iter().collect::<Vec<_>>(),
            &instances.iter().collect::<Vec<_>>(),
        );
        let expected_allocs = allocs.iter().filter(|a| a.node == nodes[0] && !a.state.is_terminal()).count();
        let expected_instances = instances.iter().filter(|i| i.node == nodes[0] && !i.state.is_terminal()).count();
        prop_assert_eq!(loss.allocs.len(), expected_allocs);
        prop_assert_eq!(loss.instances.len(), expected_instances);
        prop_assert_eq!(loss.stops.len(), expected_allocs + expected_instances);
        let unique: BTreeSet<&String> = loss.stops.iter().map(|(m, _)| m).collect();
        prop_assert_eq!(unique.len(), loss.stops.len());
    }
}
