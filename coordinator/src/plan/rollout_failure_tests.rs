//! A rollout's reaction to a failed replica, for every kind of record.

use super::*;
use crate::plan::fixtures;
use proptest::prelude::*;
use reef_proto::app::AppDesired;
use reef_proto::NodeId;

fn record(version: u32, proven: u32, revert_to: Option<u32>) -> AppRecord {
    AppRecord {
        name: "web".into(),
        version,
        latest: version,
        replicas: 2,
        desired: AppDesired::Running,
        proven,
        revert_to,
        rollout_failure: None,
        halted: false,
        created_at_ms: 0,
        updated_at_ms: 0,
        maintenance: None,
    }
}

#[test]
fn with_a_release_to_go_back_to_it_reverts() {
    let r = record(3, 2, Some(2));
    let reaction = react(&r, 3, "crashed", true).expect("reacts");
    assert_eq!(
        reaction,
        Reaction::Revert {
            to: 2,
            failure: "release 3 failed (crashed); reverted to release 2".into()
        }
    );
    let next = reaction.applied_to(&r);
    assert_eq!(
        (next.version, next.revert_to, next.halted),
        (2, None, false)
    );
    assert_eq!(next.rollout_failure.as_deref(), Some(reaction.failure()));
}

#[test]
fn without_one_a_rollout_with_older_replicas_halts() {
    let r = record(3, 2, None);
    let reaction = react(&r, 3, "crashed", true).expect("reacts");
    assert_eq!(
        reaction,
        Reaction::Halt {
            failure: "release 3 failed (crashed); rollout halted".into()
        }
    );
    let next = reaction.applied_to(&r);
    assert!(next.halted);
    assert_eq!(next.version, 3);
}

#[test]
fn a_release_never_proven_failed_its_deploy_and_halts() {
    let r = record(1, 0, None);
    assert_eq!(
        react(&r, 1, "exited with code 1", false),
        Some(Reaction::Halt {
            failure: "release 1 failed (exited with code 1)".into()
        })
    );
}

#[test]
fn a_proven_release_failing_later_is_the_reconcilers() {
    assert_eq!(react(&record(2, 2, None), 2, "crashed", false), None);
}

#[test]
fn another_current_release_or_a_recorded_failure_changes_nothing() {
    assert_eq!(react(&record(3, 2, Some(2)), 2, "crashed", true), None);
    let mut r = record(3, 2, Some(2));
    r.rollout_failure = Some("earlier".into());
    assert_eq!(react(&r, 3, "crashed", true), None);
}

#[test]
fn settled_means_enough_replicas_all_current_and_healthy() {
    let node = NodeId::new();
    let r = record(2, 2, Some(1));
    let healthy = fixtures::instance("web", 2, node, InstanceState::Healthy);
    let other = fixtures::instance("web", 2, node, InstanceState::Healthy);
    let old = fixtures::instance("web", 1, node, InstanceState::Healthy);
    let starting = fixtures::instance("web", 2, node, InstanceState::Starting);
    assert!(settled(&r, &[&healthy, &other]));
    assert!(!settled(&r, &[&healthy]), "one short");
    assert!(!settled(&r, &[&healthy, &old]), "an old release runs");
    assert!(!settled(&r, &[&healthy, &starting]), "one is not healthy");
}

proptest! {
    /// Whatever the record: a reaction only ever moves the app back to its
    /// revert release or halts it, never forward, and says why.
    #[test]
    fn a_reaction_never_moves_forward(
        version in 1u32..6,
        failed in 1u32..6,
        proven in 0u32..6,
        revert in proptest::option::of(0u32..6),
        others_older in any::<bool>(),
        recorded in any::<bool>(),
    ) {
        let mut r = record(version, proven, revert);
        if recorded { r.rollout_failure = Some("earlier".into()); }
        match react(&r, failed, "crashed", others_older) {
            None => {}
            Some(reaction) => {
                prop_assert_eq!(failed, version);
                prop_assert!(!recorded);
                let next = reaction.applied_to(&r);
                prop_assert!(next.version <= version || Some(next.version) == revert);
                prop_assert!(next.rollout_failure.is_some());
                prop_assert!(next.halted || Some(next.version) == revert);
            }
        }
    }
}
