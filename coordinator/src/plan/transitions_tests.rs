use super::*;
use proptest::prelude::*;
use reef_proto::app::InstanceState;
use reef_proto::job::JobSpec;
use reef_proto::{AllocId, JobId, NodeId};

fn alloc(node: NodeId, job: JobId) -> Allocation {
    Allocation {
        id: AllocId::new(),
        job,
        node,
        resources: Default::default(),
        state: AllocState::Assigned,
        gpus: Vec::new(),
        event_seq: 0,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

fn job(retries: u32) -> JobRecord {
    let mut spec = JobSpec::new(vec!["true".into()]);
    spec.retries = retries;
    crate::plan::fixtures::job(spec)
}

fn event(alloc: &Allocation, seq: u32, state: AllocState) -> AllocEvent {
    AllocEvent {
        alloc: alloc.id,
        job: alloc.job,
        node: alloc.node,
        seq,
        state,
        at_ms: 100 + u64::from(seq),
        output_lines: Some((1, 2)),
        usage: None,
        result: None,
    }
}

fn lost() -> AllocState {
    AllocState::Lost {
        reason: "node n stopped responding".into(),
    }
}

fn step_alloc(a: &mut Allocation, seq: u32, state: AllocState, now_ms: u64) -> AllocChange {
    let e = event(a, seq, state);
    apply_alloc_event(a, &e, now_ms)
}

#[test]
fn an_event_applies_once_and_only_from_its_node() {
    let mut a = alloc(NodeId::new(), JobId::new());
    let e = event(&a, 1, AllocState::Accepted);
    assert_eq!(apply_alloc_event(&mut a, &e, 7), AllocChange::Moved);
    assert_eq!(
        (a.state.clone(), a.event_seq, a.updated_at_ms),
        (AllocState::Accepted, 1, 7)
    );
    assert_eq!(apply_alloc_event(&mut a, &e, 8), AllocChange::Replay);
    let mut forged = event(&a, 2, AllocState::Running { pid: 1 });
    forged.node = NodeId::new();
    assert_eq!(apply_alloc_event(&mut a, &forged, 8), AllocChange::Foreign);
    let mut other_job = event(&a, 2, AllocState::Running { pid: 1 });
    other_job.job = JobId::new();
    assert_eq!(
        apply_alloc_event(&mut a, &other_job, 8),
        AllocChange::Foreign
    );
    assert_eq!(a.state, AllocState::Accepted);
}

#[test]
fn a_late_state_takes_its_number_but_not_its_state() {
    let mut a = alloc(NodeId::new(), JobId::new());
    step_alloc(&mut a, 1, AllocState::Running { pid: 3 }, 1);
    let late = event(&a, 2, AllocState::Starting);
    assert_eq!(apply_alloc_event(&mut a, &late, 2), AllocChange::Refused);
    assert!(AllocChange::Refused.writes());
    assert_eq!(
        (a.state.clone(), a.event_seq),
        (AllocState::Running { pid: 3 }, 2)
    );
}

#[test]
fn the_job_mirrors_its_allocation() {
    let mut j = job(0);
    let mut a = alloc(NodeId::new(), j.id);
    j.alloc = Some(a.id);
    a.state = AllocState::Starting;
    assert_eq!(job_after(&j, &a, &event(&a, 1, AllocState::Starting)), None);
    a.state = AllocState::Running { pid: 1 };
    let running = job_after(&j, &a, &event(&a, 2, a.state.clone())).expect("changes");
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.started_at_ms, Some(102));
    assert_eq!(
        job_after(&running, &a, &event(&a, 3, a.state.clone())),
        None,
        "no change twice"
    );
    a.state = AllocState::Exited { code: 3 };
    let done = job_after(&running, &a, &event(&a, 4, a.state.clone())).expect("changes");
    assert_eq!(done.state, JobState::Exited { code: 3 });
    assert_eq!(
        (done.finished_at_ms, done.output_lines),
        (Some(104), Some((1, 2)))
    );
    assert_eq!(done.started_at_ms, Some(102), "the start stays");
    a.state = lost();
    assert_eq!(
        job_after(&done, &a, &event(&a, 5, lost())),
        None,
        "ended is final"
    );
}

#[test]
fn a_lost_allocation_retries_while_retries_last() {
    let mut j = job(2);
    let first = NodeId::new();
    let mut a = alloc(first, j.id);
    j.alloc = Some(a.id);
    j.node = Some(first);
    a.state = lost();
    let retry = job_after(&j, &a, &event(&a, 1, lost())).expect("changes");
    assert_eq!(
        retry.state,
        JobState::Pending {
            reason: "retrying (1 of 2): node n stopped responding".into()
        }
    );
    assert_eq!(
        (retry.alloc, retry.node, retry.lost_on.clone()),
        (None, None, vec![first])
    );
    // The lost attempt's late events no longer move the job.
    assert_eq!(job_after(&retry, &a, &event(&a, 2, lost())), None);

    let mut last = retry.clone();
    last.lost_on.push(NodeId::new());
    let mut b = alloc(NodeId::new(), j.id);
    last.alloc = Some(b.id);
    b.state = lost();
    let ended = job_after(&last, &b, &event(&b, 1, lost())).expect("changes");
    assert!(
        matches!(ended.state, JobState::Lost { .. }),
        "{:?}",
        ended.state
    );
}

#[test]
fn a_stopped_job_is_not_retried() {
    let mut j = job(3);
    let mut a = alloc(NodeId::new(), j.id);
    j.alloc = Some(a.id);
    j.stop_requested = true;
    a.state = lost();
    let ended = job_after(&j, &a, &event(&a, 1, lost())).expect("changes");
    assert!(matches!(ended.state, JobState::Lost { .. }));
}

fn instance(node: NodeId) -> Instance {
    crate::plan::fixtures::instance("a", 1, node, InstanceState::Assigned)
}

fn instance_event(i: &Instance, seq: u32, state: InstanceState) -> InstanceEvent {
    InstanceEvent {
        instance: i.id,
        app: i.app.clone(),
        node: i.node,
        seq,
        state,
        port: Some(8000),
        restarts: seq,
        message: None,
        at_ms: 0,
    }
}

fn step(i: &mut Instance, seq: u32, state: InstanceState, now_ms: u64) -> bool {
    let e = instance_event(i, seq, state);
    apply_instance_event(i, &e, now_ms)
}

#[test]
fn instance_events_apply_once_from_their_node_and_never_after_the_end() {
    let mut i = instance(NodeId::new());
    assert!(step(&mut i, 1, InstanceState::Healthy, 5));
    assert_eq!(
        (i.state.clone(), i.port, i.restarts),
        (InstanceState::Healthy, Some(8000), 1)
    );
    assert!(!step(&mut i, 1, InstanceState::Starting, 6));
    let mut forged = instance_event(&i, 2, InstanceState::Draining);
    forged.node = NodeId::new();
    assert!(!apply_instance_event(&mut i, &forged, 6));
    let mut other_app = instance_event(&i, 2, InstanceState::Draining);
    other_app.app = "b".into();
    assert!(!apply_instance_event(&mut i, &other_app, 6));
    assert!(!step(&mut i, 2, InstanceState::Assigned, 6));
    assert!(step(&mut i, 3, InstanceState::Stopped, 6));
    assert!(!step(&mut i, 4, InstanceState::Starting, 7));
    assert_eq!(i.state, InstanceState::Stopped);
}

// Random event streams, as JetStream may deliver them (duplicates, any
// order, late arrivals), through the allocation, job and instance machines.

fn alloc_state() -> impl Strategy<Value = AllocState> {
    prop_oneof![
        Just(AllocState::Accepted),
        Just(AllocState::Starting),
        (1u32..5).prop_map(|pid| AllocState::Running { pid }),
        Just(AllocState::Stopping),
        (0i32..3).prop_map(|code| AllocState::Exited { code }),
        Just(AllocState::Stopped),
        Just(AllocState::Failed { reason: "f".into() }),
        Just(lost()),
    ]
}

fn instance_state() -> impl Strategy<Value = InstanceState> {
    // Weighted so that each of the nine states is as likely as any other.
    prop_oneof![
        7 => crate::plan::fixtures::live_state(),
        1 => Just(InstanceState::Failed { reason: "f".into() }),
        1 => Just(InstanceState::Lost { reason: "l".into() }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Attempts of one job, each an allocation on its own node, get events
    /// in random order with duplicates; the job follows its current attempt,
    /// a new attempt starts only when the job went back to pending.
    #[test]
    fn random_event_streams_keep_the_invariants(
        retries in 0u32..3,
        stream in prop::collection::vec((0usize..3, 1u32..8, alloc_state(), any::<bool>()), 1..40),
    ) {
        let mut j = job(retries);
        let mut attempts: Vec<Allocation> = Vec::new();
        let start = |j: &mut JobRecord, attempts: &mut Vec<Allocation>| {
            let a = alloc(NodeId::new(), j.id);
            j.alloc = Some(a.id);
            j.node = Some(a.node);
            j.state = JobState::Assigned;
            attempts.push(a);
        };
        start(&mut j, &mut attempts);
        let mut ended_allocs = std::collections::HashSet::new();
        for (which, seq, state, duplicate) in stream {
            let index = which % attempts.len();
            let target = attempts[index].clone();
            let e = event(&target, seq, state);
            for _ in 0..(1 + usize::from(duplicate)) {
                let before = attempts[index].state.clone();
                let change = apply_alloc_event(&mut attempts[index], &e, 1);
                let after = attempts[index].state.clone();
                prop_assert!(after.rank() >= before.rank(), "never back: {before:?} -> {after:?}");
                if before.is_terminal() {
                    prop_assert_eq!(&after, &before, "a terminal state is final");
                }
                if ended_allocs.contains(&target.id) {
                    prop_assert!(after.is_terminal(), "an ended allocation never runs again");
                }
                if after.is_terminal() {
                    ended_allocs.insert(target.id);
                }
                if change != AllocChange::Moved {
                    prop_assert_eq!(&after, &before);
                }
                let job_before = j.clone();
                if let Some(next) = job_after(&j, &attempts[index], &e) {
                    prop_assert!(!job_before.state.is_terminal(), "an ended job never changes");
                    prop_assert_eq!(job_before.alloc, Some(target.id), "only the current attempt moves the job");
                    j = next;
                }
                if let JobState::Pending { .. } = j.state {
                    prop_assert!(j.lost_on.len() as u32 <= retries);
                    start(&mut j, &mut attempts);
                }
            }
        }
        prop_assert!(attempts.len() as u32 <= retries + 1, "at most one attempt per retry");
        let live_current = attempts
            .iter()
            .filter(|a| !a.state.is_terminal() && Some(a.id) == j.alloc)
            .count();
        prop_assert!(live_current <= 1);
    }

    #[test]
    fn random_instance_streams_never_leave_a_terminal_state(
        stream in prop::collection::vec((1u32..10, instance_state()), 1..40),
    ) {
        let mut i = instance(NodeId::new());
        let mut ended: Option<InstanceState> = None;
        let mut left_assigned = false;
        for (seq, state) in stream {
            let before = i.clone();
            let applied = step(&mut i, seq, state, 1);
            if let Some(end) = &ended {
                prop_assert_eq!(&i.state, end, "a terminal state is final");
            }
            if i.state.is_terminal() {
                ended = Some(i.state.clone());
            }
            if left_assigned {
                prop_assert!(i.state != InstanceState::Assigned, "never back to assigned");
            }
            left_assigned |= i.state != InstanceState::Assigned;
            if applied {
                prop_assert!(i.event_seq > before.event_seq);
            } else {
                prop_assert_eq!(&i, &before);
            }
        }
    }
}

#[test]
fn a_restart_or_a_failure_is_a_crash_and_nothing_else_is() {
    let node = NodeId::new();
    let mut after = crate::plan::fixtures::instance("web", 1, node, InstanceState::Starting);
    after.restarts = 2;
    after.message = Some("exited with code 7; restarting in 500ms".into());
    assert_eq!(
        crash(Some(1), &after).as_deref(),
        Some("exited with code 7; restarting in 500ms")
    );
    assert_eq!(crash(Some(2), &after), None, "the same restart again");
    assert_eq!(crash(None, &after), None, "unknown before");
    after.state = InstanceState::Healthy;
    assert_eq!(crash(Some(2), &after), None);
    after.state = InstanceState::Failed {
        reason: "the binary is missing".into(),
    };
    assert_eq!(
        crash(Some(2), &after).as_deref(),
        Some("the binary is missing")
    );
}
