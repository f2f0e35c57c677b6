//! What retention deletes, at chosen times.

use super::*;
use crate::plan::fixtures;
use proptest::prelude::*;
use reef_proto::alloc::AllocState;
use reef_proto::app::{AppDesired, InstanceState};
use reef_proto::job::{JobSpec, JobState, Replica};
use reef_proto::{AllocId, JobId, NodeId};

const DAY: u64 = 24 * 3_600_000;

fn policy() -> Policy {
    Policy::default()
}

fn job(state: JobState, finished: Option<u64>) -> JobRecord {
    let mut job = fixtures::job(JobSpec::new(vec!["true".into()]));
    job.state = state;
    job.finished_at_ms = finished;
    job.submitted_at_ms = 0;
    job
}

fn app(version: u32, revert_to: Option<u32>) -> AppRecord {
    AppRecord {
        name: "web".into(),
        version,
        latest: version,
        replicas: 1,
        desired: AppDesired::Running,
        proven: version,
        revert_to,
        rollout_failure: None,
        halted: false,
        created_at_ms: 0,
        updated_at_ms: 0,
        maintenance: None,
    }
}

#[test]
fn a_finished_job_goes_after_the_retention_period_and_a_live_one_never() {
    let now = 30 * DAY;
    let p = policy();
    let done = job(JobState::Exited { code: 0 }, Some(now - 7 * DAY));
    assert!(p.job_expired(&done, true, now));
    let recent = job(JobState::Exited { code: 0 }, Some(now - 7 * DAY + 1));
    assert!(!p.job_expired(&recent, true, now));
    for live in [
        JobState::Pending { reason: "x".into() },
        JobState::Assigned,
        JobState::Running,
    ] {
        assert!(!p.job_expired(&job(live, None), true, now));
    }
    let never_started = job(JobState::Stopped, None);
    assert!(
        p.job_expired(&never_started, true, now),
        "ends as it was submitted"
    );
}

#[test]
fn a_copy_of_a_replicated_job_waits_for_its_groups_verdict() {
    let now = 30 * DAY;
    let mut copy = job(JobState::Exited { code: 0 }, Some(0));
    copy.replica = Some(Replica {
        group: JobId::new(),
        index: 1,
    });
    assert!(!policy().job_expired(&copy, false, now));
    assert!(policy().job_expired(&copy, true, now));
}

#[test]
fn a_finished_allocation_goes_after_the_retention_period() {
    let now = 30 * DAY;
    let mut alloc = Allocation {
        id: AllocId::new(),
        job: JobId::new(),
        node: NodeId::new(),
        resources: Default::default(),
        gpus: Vec::new(),
        state: AllocState::Running { pid: 1 },
        event_seq: 0,
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    assert!(!policy().alloc_expired(&alloc, now), "live");
    alloc.state = AllocState::Lost { reason: "x".into() };
    assert!(policy().alloc_expired(&alloc, now));
    alloc.updated_at_ms = now - DAY;
    assert!(!policy().alloc_expired(&alloc, now));
}

#[test]
fn a_past_releases_instance_goes_after_an_hour_a_current_ones_after_the_period() {
    let now = 30 * DAY;
    let hour = 3_600_000;
    let mut ended = fixtures::instance("web", 1, NodeId::new(), InstanceState::Stopped);
    ended.updated_at_ms = now - hour;
    assert!(
        policy().instance_expired(&ended, Some(2), now),
        "past release"
    );
    assert!(policy().instance_expired(&ended, None, now), "app gone");
    assert!(
        !policy().instance_expired(&ended, Some(1), now),
        "current release"
    );
    ended.updated_at_ms = now - 7 * DAY;
    assert!(policy().instance_expired(&ended, Some(1), now));
    let live = fixtures::instance("web", 1, NodeId::new(), InstanceState::Healthy);
    assert!(!policy().instance_expired(&live, Some(2), now));
    let short = Policy {
        retain: Duration::from_secs(5),
        ..policy()
    };
    let mut just_ended = fixtures::instance("web", 1, NodeId::new(), InstanceState::Stopped);
    just_ended.updated_at_ms = now - 5_000;
    assert!(
        short.instance_expired(&just_ended, Some(2), now),
        "the shorter of the two"
    );
}

#[test]
fn the_newest_releases_and_every_needed_one_stay() {
    let p = Policy {
        keep_releases: 3,
        ..policy()
    };
    let versions: Vec<u32> = (1..=10).collect();
    let none = BTreeSet::new();
    assert_eq!(
        p.releases_to_delete(&app(10, None), &versions, &none),
        vec![1, 2, 3, 4, 5, 6, 7]
    );
    // Current is an old one (a rollback went back), one to revert to, one in use.
    let record = app(2, Some(4));
    let in_use = BTreeSet::from([6]);
    assert_eq!(
        p.releases_to_delete(&record, &versions, &in_use),
        vec![1, 3, 5, 7]
    );
    assert!(p
        .releases_to_delete(&app(3, None), &[1, 2, 3], &none)
        .is_empty());
}

#[test]
fn an_artifact_goes_when_nothing_refers_to_it_and_it_is_old_enough() {
    let now = 30 * DAY;
    let stored = vec![
        ("a".to_string(), 0),
        ("b".to_string(), 0),
        ("c".to_string(), now - 10),
    ];
    let referred = BTreeSet::from(["a".to_string()]);
    assert_eq!(
        policy().artifacts_to_delete(&stored, &referred, now),
        vec!["b".to_string()]
    );
}

#[test]
fn a_pass_stops_at_the_first_record_written_after_the_cutoff() {
    let now = 30 * DAY;
    assert!(!policy().past_cutoff(now - 7 * DAY, now));
    assert!(policy().past_cutoff(now - 7 * DAY + 1, now));
}

proptest! {
    /// Whatever the versions and what is needed, the kept releases are at
    /// least the newest `keep`, and never a needed one goes.
    #[test]
    fn no_needed_release_ever_goes(
        versions in proptest::collection::btree_set(1u32..40, 0..30),
        keep in 0u32..12,
        current in 1u32..40,
        revert in proptest::option::of(1u32..40),
        in_use in proptest::collection::btree_set(1u32..40, 0..5),
    ) {
        let p = Policy { keep_releases: keep, ..policy() };
        let versions: Vec<u32> = versions.into_iter().collect();
        let gone = p.releases_to_delete(&app(current, revert), &versions, &in_use);
        for v in &gone {
            prop_assert!(*v != current && Some(*v) != revert && !in_use.contains(v));
            prop_assert!(versions.contains(v));
        }
        let kept = versions.len() - gone.len();
        prop_assert!(kept >= versions.len().min(keep as usize));
        let mut newest = versions.clone();
        newest.sort_unstable_by(|a, b| b.cmp(a));
        for v in newest.iter().take(keep as usize) {
            prop_assert!(!gone.contains(v));
        }
    }

    /// A finished job goes exactly when it ended at or before the cutoff.
    #[test]
    fn a_finished_job_goes_exactly_past_the_period(finished in 0u64..60 * DAY, now in 7 * DAY..60 * DAY) {
        let done = job(JobState::Exited { code: 1 }, Some(finished));
        let age = now.saturating_sub(finished);
        prop_assert_eq!(policy().job_expired(&done, true, now), finished <= now && age >= 7 * DAY);
    }
}
