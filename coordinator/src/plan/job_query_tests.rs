//! Pages of jobs, checked against sorting everything.

use super::*;
use crate::plan::fixtures;
use proptest::prelude::*;
use reef_proto::job::{JobSpec, JobState};
use uuid::Uuid;

/// A job submitted at `ms` (its id carries that time) by `owner`.
fn job_at(ms: u64, owner: &str, state: JobState) -> JobRecord {
    let mut spec = JobSpec::new(vec!["true".into()]);
    spec.owner = owner.into();
    let mut job = fixtures::job(spec);
    let ts =
        uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, ((ms % 1000) * 1_000_000) as u32);
    job.id = JobId(Uuid::new_v7(ts));
    job.state = state;
    job
}

#[test]
fn an_id_carries_its_submission_time_and_a_prefix_a_range_of_them() {
    let job = job_at(1_700_000_123_456, "a", JobState::Running);
    assert_eq!(id_ms(job.id), 1_700_000_123_456);
    let text = job.id.to_string();
    let (lo, hi) = prefix_ms(&text[..8]);
    assert!(lo <= 1_700_000_123_456 && 1_700_000_123_456 <= hi);
    assert_eq!(hi - lo, (1 << 16) - 1, "8 hex digits leave 16 bits of ms");
    assert_eq!(prefix_ms(&text), (1_700_000_123_456, 1_700_000_123_456));
    assert_eq!(prefix_ms(""), (0, (1 << 48) - 1));
}

#[test]
fn a_page_is_the_newest_matches_and_says_whether_more_exist() {
    let jobs: Vec<JobRecord> = (0..10)
        .map(|i| {
            job_at(
                1_000 + i,
                if i % 2 == 0 { "alice" } else { "bob" },
                JobState::Running,
            )
        })
        .collect();
    let mut page = Page::new(JobQuery::newest(3), None);
    for job in &jobs {
        page.offer(job);
    }
    let (listed, more) = page.finish();
    assert_eq!(
        listed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![jobs[9].id, jobs[8].id, jobs[7].id]
    );
    assert!(more);

    let mut mine = Page::new(JobQuery::newest(10), Some("alice".into()));
    for job in &jobs {
        mine.offer(job);
    }
    let (listed, more) = mine.finish();
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|j| j.spec.owner == "alice"));
    assert!(!more);
}

#[test]
fn before_pages_on_and_state_filters() {
    let jobs: Vec<JobRecord> = (0..6)
        .map(|i| {
            let state = if i < 3 {
                JobState::Exited { code: 0 }
            } else {
                JobState::Running
            };
            job_at(1_000 + i, "a", state)
        })
        .collect();
    let query = JobQuery {
        limit: 2,
        before: Some(jobs[4].id),
        ..JobQuery::default()
    };
    let mut page = Page::new(query, None);
    jobs.iter().for_each(|j| page.offer(j));
    let (listed, _) = page.finish();
    assert_eq!(
        listed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![jobs[3].id, jobs[2].id]
    );
    let query = JobQuery {
        state: Some("exited".into()),
        ..JobQuery::newest(10)
    };
    let mut page = Page::new(query, None);
    jobs.iter().for_each(|j| page.offer(j));
    assert_eq!(page.finish().0.len(), 3);
}

#[test]
fn the_same_job_offered_twice_is_listed_once() {
    let job = job_at(5, "a", JobState::Running);
    let mut page = Page::new(JobQuery::newest(5), None);
    page.offer(&job);
    page.offer(&job);
    assert_eq!(page.finish().0.len(), 1);
}

#[test]
fn a_full_page_stops_the_read_only_past_the_clock_margin() {
    let mut page = Page::new(JobQuery::newest(1), None);
    page.offer(&job_at(100_000, "a", JobState::Running));
    assert!(!page.full(0), "one job is not more than the page needs");
    page.offer(&job_at(100_001, "a", JobState::Running));
    assert!(
        !page.full(100_000 - CLOCK_MARGIN_MS),
        "a write this late may hide a newer job"
    );
    assert!(page.full(100_000 - CLOCK_MARGIN_MS - 1));
}

#[test]
fn a_prefix_stops_the_read_before_its_time() {
    let job = job_at(10_000_000, "a", JobState::Running);
    let prefix = job.id.to_string()[..13].to_string();
    let query = JobQuery {
        prefix: Some(prefix.clone()),
        ..JobQuery::newest(2)
    };
    let page = Page::new(query, None);
    let (lo, _) = prefix_ms(&prefix);
    assert!(!page.full(lo - CLOCK_MARGIN_MS));
    assert!(page.full(lo - CLOCK_MARGIN_MS - 1));
}

proptest! {
    /// Read newest write first, stopping when the page says it is full,
    /// the page is what sorting every job would give.
    #[test]
    fn stopping_early_lists_what_sorting_everything_would(
        jobs in proptest::collection::vec((0u64..100_000, 0u64..50_000, 0usize..3, any::<bool>()), 0..120),
        limit in 1u32..12,
        state_filter in proptest::option::of(0usize..3),
    ) {
        let states = [JobState::Running, JobState::Exited { code: 0 }, JobState::Stopped];
        let names = ["running", "exited", "stopped"];
        // (submitted, written >= submitted)
        let mut written: Vec<(u64, JobRecord)> = jobs
            .iter()
            .map(|(submitted, delay, state, alice)| {
                let owner = if *alice { "alice" } else { "bob" };
                (submitted + delay, job_at(1_000_000 + submitted, owner, states[*state].clone()))
            })
            .collect();
        written.sort_by_key(|(w, _)| *w);
        let query = JobQuery {
            state: state_filter.map(|s| names[s].to_string()),
            ..JobQuery::newest(limit)
        };
        let mut page = Page::new(query.clone(), None);
        for (w, job) in written.iter().rev() {
            if page.full(1_000_000 + w) {
                break;
            }
            page.offer(job);
        }
        let (listed, more) = page.finish();
        let mut all: Vec<&JobRecord> = written
            .iter()
            .map(|(_, j)| j)
            .filter(|j| query.state.as_deref().is_none_or(|s| j.state.name() == s))
            .collect();
        all.sort_by_key(|j| std::cmp::Reverse(j.id));
        let expected: Vec<JobId> = all.iter().take(limit as usize).map(|j| j.id).collect();
        prop_assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), expected);
        prop_assert_eq!(more, all.len() > limit as usize);
    }
}
