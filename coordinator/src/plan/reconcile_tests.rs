use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

const NOW: u64 = 10_000_000;

fn want(name: &str, version: u32, replicas: u32) -> AppWant {
    AppWant {
        name: name.into(),
        version,
        replicas,
        desired: AppDesired::Running,
        halted: false,
    }
}

fn instance(app: &str, version: u32, node: NodeId, state: InstanceState) -> Instance {
    let mut i = crate::plan::fixtures::instance(app, version, node, state);
    i.created_at_ms = 1;
    i.updated_at_ms = 1;
    i
}

fn lost(app: &str, node: NodeId, at_ms: u64) -> Ending {
    Ending {
        app: app.into(),
        version: 1,
        node,
        kind: EndKind::Lost,
        at_ms,
    }
}

fn failed(app: &str, version: u32, at_ms: u64) -> Ending {
    Ending {
        app: app.into(),
        version,
        node: NodeId::new(),
        kind: EndKind::Failed,
        at_ms,
    }
}

/// Runs the decision with every node in the given condition (Ready unless listed).
fn decide(
    apps: &[AppWant],
    instances: &[Instance],
    stopping: &HashSet<InstanceId>,
    endings: &[Ending],
    conditions: &HashMap<NodeId, NodeCondition>,
) -> Decision {
    let refs: Vec<&Instance> = instances.iter().collect();
    let node = |id: NodeId| conditions.get(&id).copied().unwrap_or(NodeCondition::Ready);
    reconcile(&World {
        apps,
        instances: &refs,
        stopping,
        endings,
        node: &node,
        now_ms: NOW,
    })
}

fn starts(decision: &Decision) -> Vec<Option<NodeId>> {
    decision
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { on, .. } => Some(*on),
            Action::Stop { .. } => None,
        })
        .collect()
}

fn stops(decision: &Decision) -> Vec<InstanceId> {
    decision
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Stop { instance, .. } => Some(*instance),
            Action::Start { .. } => None,
        })
        .collect()
}

fn none() -> HashSet<InstanceId> {
    HashSet::new()
}

fn ready() -> HashMap<NodeId, NodeCondition> {
    HashMap::new()
}

#[test]
fn an_app_at_its_replicas_is_left_alone() {
    let node = NodeId::new();
    let live = [
        instance("a", 1, node, InstanceState::Healthy),
        instance("a", 1, node, InstanceState::Starting),
    ];
    let d = decide(&[want("a", 1, 2)], &live, &none(), &[], &ready());
    assert_eq!(d, Decision::default());
}

#[test]
fn missing_replicas_are_started_anywhere() {
    let d = decide(&[want("a", 3, 2)], &[], &none(), &[], &ready());
    assert_eq!(
        d.actions,
        vec![
            Action::Start {
                app: "a".into(),
                version: 3,
                on: None
            };
            2
        ]
    );
    assert!(d.waiting.is_empty());
}

#[test]
fn a_replica_lost_on_a_ready_node_comes_back_there() {
    let node = NodeId::new();
    let d = decide(
        &[want("a", 1, 1)],
        &[],
        &none(),
        &[lost("a", node, NOW - 100)],
        &ready(),
    );
    assert_eq!(starts(&d), vec![Some(node)]);
}

#[test]
fn a_replica_lost_on_a_silent_node_waits_for_it() {
    let node = NodeId::new();
    let conditions = HashMap::from([(node, NodeCondition::Silent)]);
    let d = decide(
        &[want("a", 1, 1)],
        &[],
        &none(),
        &[lost("a", node, NOW - 100)],
        &conditions,
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.waiting["a"], Wait::NodeAway { node });
}

#[test]
fn a_replica_lost_with_its_node_goes_anywhere() {
    let node = NodeId::new();
    let conditions = HashMap::from([(node, NodeCondition::Lost)]);
    let d = decide(
        &[want("a", 1, 1)],
        &[],
        &none(),
        &[lost("a", node, NOW - 100)],
        &conditions,
    );
    assert_eq!(starts(&d), vec![None]);
}

#[test]
fn only_what_a_node_lost_beyond_what_it_runs_again_is_owed_to_it() {
    let (a, b) = (NodeId::new(), NodeId::new());
    // Both replicas were on `a`; one already came back there, `b` lost one too.
    let live = [instance("x", 1, a, InstanceState::Starting)];
    let endings = [
        lost("x", a, NOW - 300),
        lost("x", a, NOW - 200),
        lost("x", b, NOW - 100),
    ];
    let d = decide(&[want("x", 1, 3)], &live, &none(), &endings, &ready());
    let mut got = starts(&d);
    got.sort();
    let mut expected = vec![Some(a), Some(b)];
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn a_node_owed_more_than_is_missing_gets_only_what_is_missing() {
    let a = NodeId::new();
    let endings = [lost("x", a, NOW - 300), lost("x", a, NOW - 200)];
    let d = decide(&[want("x", 1, 1)], &[], &none(), &endings, &ready());
    assert_eq!(starts(&d), vec![Some(a)]);
}

#[test]
fn old_endings_are_forgotten() {
    let a = NodeId::new();
    let conditions = HashMap::from([(a, NodeCondition::Silent)]);
    let endings = [lost("x", a, NOW - ENDING_MEMORY_MS - 1)];
    let d = decide(&[want("x", 1, 1)], &[], &none(), &endings, &conditions);
    assert_eq!(starts(&d), vec![None]);
}

#[test]
fn failed_replicas_back_off_and_double() {
    let app = [want("a", 2, 1)];
    // One failure 1 s ago: wait out the first backoff.
    let d = decide(&app, &[], &none(), &[failed("a", 2, NOW - 1_000)], &ready());
    assert!(d.actions.is_empty());
    assert_eq!(
        d.waiting["a"],
        Wait::Backoff {
            until_ms: NOW - 1_000 + FAILURE_BACKOFF_MS,
            failures: 1
        }
    );
    // Past it: start again.
    let d = decide(
        &app,
        &[],
        &none(),
        &[failed("a", 2, NOW - FAILURE_BACKOFF_MS)],
        &ready(),
    );
    assert_eq!(starts(&d), vec![None]);
    // Three failures: four times the first wait after the last one.
    let three = [
        failed("a", 2, NOW - 60_000),
        failed("a", 2, NOW - 40_000),
        failed("a", 2, NOW - 15_000),
    ];
    let d = decide(&app, &[], &none(), &three, &ready());
    assert_eq!(
        d.waiting["a"],
        Wait::Backoff {
            until_ms: NOW - 15_000 + 4 * FAILURE_BACKOFF_MS,
            failures: 3
        }
    );
}

#[test]
fn failures_of_another_release_do_not_hold_back_the_current_one() {
    let d = decide(
        &[want("a", 3, 1)],
        &[],
        &none(),
        &[failed("a", 2, NOW - 10)],
        &ready(),
    );
    assert_eq!(starts(&d), vec![None]);
}

#[test]
fn backoff_is_bounded() {
    assert_eq!(backoff_ms(0), FAILURE_BACKOFF_MS);
    assert_eq!(backoff_ms(1), FAILURE_BACKOFF_MS);
    assert_eq!(backoff_ms(2), 2 * FAILURE_BACKOFF_MS);
    assert_eq!(backoff_ms(40), FAILURE_BACKOFF_MAX_MS);
    assert_eq!(backoff_ms(u32::MAX), FAILURE_BACKOFF_MAX_MS);
    for n in 1..64 {
        assert!(backoff_ms(n) <= backoff_ms(n + 1));
    }
}

#[test]
fn a_halted_app_is_left_alone() {
    let mut app = want("a", 2, 2);
    app.halted = true;
    let node = NodeId::new();
    let live = [
        instance("a", 1, node, InstanceState::Healthy),
        instance("a", 1, node, InstanceState::Healthy),
        instance("a", 1, node, InstanceState::Healthy),
    ];
    let d = decide(
        std::slice::from_ref(&app),
        &live[..1],
        &none(),
        &[],
        &ready(),
    );
    assert!(d.actions.is_empty());
    assert_eq!(d.waiting["a"], Wait::Halted);
    let d = decide(&[app], &live, &none(), &[], &ready());
    assert_eq!(d, Decision::default(), "not even its extras are stopped");
}

#[test]
fn a_stopped_app_stays_stopped_and_its_instances_are_stopped() {
    let mut app = want("a", 1, 2);
    app.desired = AppDesired::Stopped;
    let node = NodeId::new();
    let live = [
        instance("a", 1, node, InstanceState::Healthy),
        instance("a", 1, node, InstanceState::Healthy),
    ];
    let stopping = HashSet::from([live[0].id]);
    let d = decide(&[app], &live, &stopping, &[lost("a", node, NOW)], &ready());
    assert_eq!(
        d.actions,
        vec![Action::Stop {
            instance: live[1].id,
            forget_app: false
        }],
        "only the one not asked yet"
    );
}

#[test]
fn instances_of_a_destroyed_app_are_stopped_and_forgotten() {
    let live = [instance("gone", 1, NodeId::new(), InstanceState::Healthy)];
    let d = decide(&[], &live, &none(), &[], &ready());
    assert_eq!(
        d.actions,
        vec![Action::Stop {
            instance: live[0].id,
            forget_app: true
        }]
    );
}

#[test]
fn a_replacement_and_what_it_replaces_fill_one_slot() {
    let node = NodeId::new();
    let old = instance("a", 1, node, InstanceState::Healthy);
    let mut new = instance("a", 2, node, InstanceState::Starting);
    new.replaces = Some(old.id);
    let other = NodeId::new();
    let old2 = instance("a", 1, other, InstanceState::Healthy);
    let mut relief = instance("a", 2, NodeId::new(), InstanceState::Starting);
    relief.relieves = Some(old2.id);
    let d = decide(
        &[want("a", 2, 2)],
        &[old, new, old2, relief],
        &none(),
        &[],
        &ready(),
    );
    assert_eq!(d, Decision::default());
}

#[test]
fn draining_and_stopping_instances_fill_no_slot() {
    let node = NodeId::new();
    let draining = instance("a", 1, node, InstanceState::Draining);
    let asked = instance("a", 1, node, InstanceState::Healthy);
    let stopping = HashSet::from([asked.id]);
    let d = decide(
        &[want("a", 1, 1)],
        &[draining, asked],
        &stopping,
        &[],
        &ready(),
    );
    assert_eq!(starts(&d), vec![None]);
    assert!(stops(&d).is_empty());
}

#[test]
fn extras_go_other_releases_first_then_the_least_healthy_then_the_newest() {
    let node = NodeId::new();
    let old = instance("a", 1, node, InstanceState::Healthy);
    let sick = instance("a", 2, node, InstanceState::Unhealthy);
    let mut young = instance("a", 2, node, InstanceState::Healthy);
    young.created_at_ms = 5;
    let elder = instance("a", 2, node, InstanceState::Healthy);
    let live = [old.clone(), sick.clone(), young.clone(), elder.clone()];
    let d = decide(&[want("a", 2, 3)], &live, &none(), &[], &ready());
    assert_eq!(stops(&d), vec![old.id]);
    let d = decide(&[want("a", 2, 2)], &live, &none(), &[], &ready());
    assert_eq!(stops(&d), vec![old.id, sick.id]);
    let d = decide(&[want("a", 2, 1)], &live, &none(), &[], &ready());
    assert_eq!(stops(&d), vec![old.id, sick.id, young.id]);
    assert!(starts(&d).is_empty());
}

#[test]
fn apps_do_not_disturb_each_other() {
    let node = NodeId::new();
    let live = [instance("b", 1, node, InstanceState::Healthy)];
    let d = decide(
        &[want("a", 1, 1), want("b", 1, 1)],
        &live,
        &none(),
        &[lost("b", node, NOW)],
        &ready(),
    );
    assert_eq!(
        d.actions,
        vec![Action::Start {
            app: "a".into(),
            version: 1,
            on: None
        }]
    );
}

// Random worlds: the decision never overshoots, never touches what it must
// not, and applying it reaches a fixed point.

#[derive(Clone, Debug)]
struct Scenario {
    apps: Vec<AppWant>,
    instances: Vec<Instance>,
    stopping: HashSet<InstanceId>,
    endings: Vec<Ending>,
    conditions: HashMap<NodeId, NodeCondition>,
}

fn condition_strategy() -> impl Strategy<Value = NodeCondition> {
    prop_oneof![
        Just(NodeCondition::Ready),
        Just(NodeCondition::Silent),
        Just(NodeCondition::Lost),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let nodes: Vec<NodeId> = (0..4).map(|_| NodeId::new()).collect();
    let apps = prop::collection::vec(
        (
            1u32..4,
            0u32..5,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        1..4,
    );
    let instances = prop::collection::vec(
        (
            0usize..5,
            1u32..4,
            0usize..4,
            crate::plan::fixtures::live_state(),
            any::<bool>(),
            0u8..4,
        ),
        0..12,
    );
    let endings = prop::collection::vec(
        (0usize..5, 1u32..4, 0usize..4, any::<bool>(), 0u64..120_000),
        0..6,
    );
    let conditions = prop::collection::vec(condition_strategy(), 4);
    (apps, instances, endings, conditions).prop_map(move |(apps, instances, endings, conds)| {
        let name = |i: usize| format!("app{i}");
        let apps: Vec<AppWant> = apps
            .into_iter()
            .enumerate()
            .filter(|(_, (_, _, _, _, exists))| *exists)
            .map(|(i, (version, replicas, stopped, halted, _))| AppWant {
                name: name(i),
                version,
                replicas,
                desired: if stopped {
                    AppDesired::Stopped
                } else {
                    AppDesired::Running
                },
                halted,
            })
            .collect();
        let mut built: Vec<Instance> = Vec::new();
        let mut stopping = HashSet::new();
        for (app, version, node, state, asked, pair) in instances {
            let mut i = instance(&name(app), version, nodes[node], state);
            i.created_at_ms = built.len() as u64;
            // Sometimes the replacement of an earlier instance of the app.
            if pair == 0 {
                if let Some(earlier) = built.iter().rev().find(|e| e.app == i.app) {
                    i.replaces = Some(earlier.id);
                }
            }
            if asked {
                stopping.insert(i.id);
            }
            built.push(i);
        }
        let endings = endings
            .into_iter()
            .map(|(app, version, node, failure, ago)| Ending {
                app: name(app),
                version,
                node: nodes[node],
                kind: if failure {
                    EndKind::Failed
                } else {
                    EndKind::Lost
                },
                at_ms: NOW - ago,
            })
            .collect();
        let conditions = nodes.iter().copied().zip(conds).collect();
        Scenario {
            apps,
            instances: built,
            stopping,
            endings,
            conditions,
        }
    })
}

/// What a driver would do with a decision: started instances appear as
/// assigned on their node (the preferred one, else the first ready node),
/// stopped ones are marked as being stopped.
fn apply(s: &mut Scenario, decision: &Decision) {
    let any_ready = s
        .conditions
        .iter()
        .filter(|(_, c)| **c == NodeCondition::Ready)
        .map(|(n, _)| *n)
        .min()
        .unwrap_or_else(NodeId::new);
    for action in &decision.actions {
        match action {
            Action::Start { app, version, on } => {
                let mut i = instance(
                    app,
                    *version,
                    on.unwrap_or(any_ready),
                    InstanceState::Assigned,
                );
                i.created_at_ms = 1_000 + s.instances.len() as u64;
                s.instances.push(i);
            }
            Action::Stop { instance, .. } => {
                s.stopping.insert(*instance);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decisions_are_safe_and_reach_a_fixed_point(mut s in scenario()) {
        let d = decide(&s.apps, &s.instances, &s.stopping, &s.endings, &s.conditions);
        let live_ids: HashSet<InstanceId> = s
            .instances
            .iter()
            .filter(|i| !i.state.is_terminal())
            .map(|i| i.id)
            .collect();
        let mut stopped = HashSet::new();
        for action in &d.actions {
            match action {
                Action::Stop { instance, .. } => {
                    prop_assert!(live_ids.contains(instance), "stops only live instances");
                    prop_assert!(!s.stopping.contains(instance), "never asks twice");
                    prop_assert!(stopped.insert(*instance), "one stop per instance");
                }
                Action::Start { app, version, on } => {
                    let want = s.apps.iter().find(|a| &a.name == app);
                    prop_assert!(want.is_some_and(|w| w.desired == AppDesired::Running && !w.halted && w.version == *version));
                    if let Some(node) = on {
                        prop_assert_eq!(s.conditions[node], NodeCondition::Ready);
                    }
                }
            }
        }
        for want in &s.apps {
            let live: Vec<&Instance> = s.instances.iter().filter(|i| i.app == want.name).collect();
            let filled = slots(&live, &s.stopping).len() as u32;
            let started = d.actions.iter().filter(|a| matches!(a, Action::Start { app, .. } if *app == want.name)).count() as u32;
            prop_assert!(started == 0 || filled + started <= want.replicas, "never more than the replicas");
            if want.desired == AppDesired::Running && !want.halted && filled < want.replicas {
                let waits = d.waiting.contains_key(&want.name);
                prop_assert!(waits || filled + started == want.replicas, "every missing replica is started unless it waits");
            }
        }
        // Applying the decision leaves nothing more to do but waiting.
        apply(&mut s, &d);
        let again = decide(&s.apps, &s.instances, &s.stopping, &s.endings, &s.conditions);
        let starts_again = again.actions.iter().filter(|a| match a {
            Action::Start { app, .. } => !d.waiting.contains_key(app),
            Action::Stop { .. } => true,
        }).count();
        prop_assert_eq!(starts_again, 0, "second pass after {:?}: {:?}", d, again);
    }
}
