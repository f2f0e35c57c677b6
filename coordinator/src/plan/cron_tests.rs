use super::*;
use proptest::prelude::*;

fn ms(text: &str) -> u64 {
    millis(text.parse().expect("timestamp"))
}

fn every_second() -> (Schedule, TimeZone) {
    (
        Schedule::parse("* * * * * *").expect("schedule"),
        TimeZone::UTC,
    )
}

#[test]
fn ticks_since_the_last_handled_are_due_and_the_next_is_known() {
    let (s, tz) = every_second();
    let d = due(
        &s,
        &tz,
        ms("2026-12-07T12:00:00Z"),
        ms("2026-12-07T12:00:03.5Z"),
        60_000,
    );
    assert_eq!(
        d.ticks,
        [
            ms("2026-12-07T12:00:01Z"),
            ms("2026-12-07T12:00:02Z"),
            ms("2026-12-07T12:00:03Z")
        ]
    );
    assert_eq!(d.missed, None);
    assert_eq!(d.handled_ms, Some(ms("2026-12-07T12:00:03Z")));
    assert_eq!(d.next_ms, Some(ms("2026-12-07T12:00:04Z")));
    // Nothing due: the next tick only.
    let d = due(
        &s,
        &tz,
        ms("2026-12-07T12:00:03Z"),
        ms("2026-12-07T12:00:03.9Z"),
        60_000,
    );
    assert!(d.ticks.is_empty() && d.handled_ms.is_none());
    assert_eq!(d.next_ms, Some(ms("2026-12-07T12:00:04Z")));
}

#[test]
fn ticks_older_than_the_catch_up_window_are_one_missed_range() {
    let s = Schedule::parse("*/10 * * * *").expect("schedule");
    // A day without a leader; the window is 25 minutes.
    let d = due(
        &s,
        &TimeZone::UTC,
        ms("2026-12-06T12:00:00Z"),
        ms("2026-12-07T12:05:00Z"),
        25 * 60_000,
    );
    assert_eq!(
        d.missed,
        Some((ms("2026-12-06T12:10:00Z"), ms("2026-12-07T11:40:00Z")))
    );
    assert_eq!(
        d.ticks,
        [
            ms("2026-12-07T11:40:00Z"),
            ms("2026-12-07T11:50:00Z"),
            ms("2026-12-07T12:00:00Z")
        ]
    );
    assert_eq!(d.handled_ms, Some(ms("2026-12-07T12:00:00Z")));
    // A window of 0: only a tick due this very moment runs.
    let d = due(
        &s,
        &TimeZone::UTC,
        ms("2026-12-07T11:00:00Z"),
        ms("2026-12-07T12:00:00Z"),
        0,
    );
    assert_eq!(
        d.missed,
        Some((ms("2026-12-07T11:10:00Z"), ms("2026-12-07T12:00:00Z")))
    );
    assert_eq!(d.ticks, [ms("2026-12-07T12:00:00Z")]);
    // Everything missed, nothing in the window.
    let d = due(
        &s,
        &TimeZone::UTC,
        ms("2026-12-07T11:00:00Z"),
        ms("2026-12-07T12:05:00Z"),
        60_000,
    );
    assert_eq!(
        d.missed,
        Some((ms("2026-12-07T11:10:00Z"), ms("2026-12-07T12:05:00.001Z")))
    );
    assert!(d.ticks.is_empty());
    assert_eq!(d.handled_ms, Some(ms("2026-12-07T12:05:00Z")));
    assert_eq!(d.next_ms, Some(ms("2026-12-07T12:10:00Z")));
}

#[test]
fn at_most_a_hundred_ticks_run_late() {
    let (s, tz) = every_second();
    let d = due(
        &s,
        &tz,
        ms("2026-12-07T12:00:00Z"),
        ms("2026-12-07T12:10:00Z"),
        3_600_000,
    );
    assert_eq!(d.ticks.len(), MAX_DUE);
    assert_eq!(d.ticks[MAX_DUE - 1], ms("2026-12-07T12:10:00Z"));
    assert_eq!(d.missed, Some((ms("2026-12-07T12:00:01Z"), d.ticks[0])));
}

fn ids() -> impl FnMut() -> JobId {
    let mut n = 0u128;
    move || {
        n += 1;
        JobId(uuid::Uuid::from_u128(n))
    }
}

fn id(n: u128) -> JobId {
    JobId(uuid::Uuid::from_u128(n))
}

fn ticks(ticks: &[u64]) -> Due {
    Due {
        ticks: ticks.to_vec(),
        ..Due::default()
    }
}

#[test]
fn skip_runs_a_tick_only_once_the_previous_run_ended() {
    let runs = Runs {
        overlap: Overlap::Skip,
        running: true,
        queued: None,
    };
    let steps = decide(&runs, &ticks(&[1000, 2000]), ids());
    assert!(steps
        .iter()
        .all(|s| matches!(s.outcome, RunOutcome::Skipped { .. })));
    let runs = Runs {
        running: false,
        ..runs
    };
    let steps = decide(&runs, &ticks(&[1000, 2000]), ids());
    assert_eq!(steps[0].outcome, RunOutcome::Started { job: id(1) });
    assert!(matches!(steps[1].outcome, RunOutcome::Skipped { .. }));
}

#[test]
fn queue_keeps_one_run_waiting_and_starts_it_when_the_previous_ended() {
    let runs = Runs {
        overlap: Overlap::Queue,
        running: true,
        queued: None,
    };
    let steps = decide(&runs, &ticks(&[1000, 2000]), ids());
    assert_eq!(steps[0].outcome, RunOutcome::Queued { job: id(1) });
    assert!(matches!(steps[1].outcome, RunOutcome::Skipped { .. }));
    // Still running: the queued run waits, and a new tick is skipped.
    let runs = Runs {
        queued: Some((1000, id(1))),
        ..runs
    };
    let steps = decide(&runs, &ticks(&[3000]), ids());
    assert_eq!(steps.len(), 1);
    assert!(matches!(steps[0].outcome, RunOutcome::Skipped { .. }));
    // Ended: the queued run starts with the job it was given, first.
    let runs = Runs {
        running: false,
        ..runs
    };
    let steps = decide(&runs, &ticks(&[3000]), ids());
    assert_eq!(steps[0].tick_ms, 1000);
    assert_eq!(steps[0].outcome, RunOutcome::Started { job: id(1) });
    assert!(steps[0].starts_queued(&runs));
    assert_eq!(steps[1].outcome, RunOutcome::Queued { job: id(1) });
    assert!(!steps[1].starts_queued(&runs));
}

#[test]
fn allow_runs_every_tick() {
    let runs = Runs {
        overlap: Overlap::Allow,
        running: true,
        queued: None,
    };
    let steps = decide(&runs, &ticks(&[1, 2, 3]), ids());
    assert_eq!(
        steps.iter().map(|s| s.outcome.clone()).collect::<Vec<_>>(),
        [1, 2, 3].map(|n| RunOutcome::Started { job: id(n) })
    );
}

#[test]
fn a_missed_range_comes_first() {
    let runs = Runs {
        overlap: Overlap::Skip,
        running: false,
        queued: None,
    };
    let due = Due {
        ticks: vec![5000],
        missed: Some((1000, 5000)),
        ..Due::default()
    };
    let steps = decide(&runs, &due, ids());
    assert_eq!(steps[0].tick_ms, 1000);
    assert_eq!(steps[0].outcome, RunOutcome::Missed { until_ms: 5000 });
    assert_eq!(steps[1].outcome, RunOutcome::Started { job: id(1) });
}

proptest! {
    /// Whatever the history, every due tick gets exactly one decision, in
    /// order, and never more than one run waits.
    #[test]
    fn every_due_tick_is_decided_once(
        overlap in prop::sample::select(vec![Overlap::Skip, Overlap::Queue, Overlap::Allow]),
        running in any::<bool>(),
        queued in any::<bool>(),
        n in 0usize..20,
    ) {
        let runs = Runs { overlap, running, queued: queued.then(|| (1, id(999))) };
        let due = ticks(&(0..n as u64).map(|i| 10 + i).collect::<Vec<_>>());
        let steps = decide(&runs, &due, ids());
        let decided: Vec<u64> = steps.iter().map(|s| s.tick_ms).filter(|t| *t >= 10).collect();
        prop_assert_eq!(decided, due.ticks.clone());
        let queued_now = steps.iter().filter(|s| matches!(s.outcome, RunOutcome::Queued { .. })).count();
        let waiting = queued_now + usize::from(queued && running);
        prop_assert!(waiting <= 1 || overlap != Overlap::Queue);
        if overlap == Overlap::Allow {
            let all_started = steps.iter().all(|s| matches!(s.outcome, RunOutcome::Started { .. }));
            prop_assert!(all_started);
        }
    }

    /// Due ticks are the schedule's, each after the last handled, none
    /// later than now, and the next is after now.
    #[test]
    fn due_ticks_lie_between_handled_and_now(
        handled in 1_700_000_000_000u64..1_800_000_000_000,
        span in 0u64..600_000,
        catch_up in 0u64..120_000,
    ) {
        let (s, tz) = every_second();
        let now = handled + span;
        let d = due(&s, &tz, handled, now, catch_up);
        prop_assert!(d.ticks.len() <= MAX_DUE);
        prop_assert!(d.ticks.iter().all(|t| *t > handled && *t <= now && t % 1000 == 0));
        prop_assert!(d.ticks.windows(2).all(|w| w[1] == w[0] + 1000));
        prop_assert!(d.next_ms.is_some_and(|n| n > now));
        if let Some(h) = d.handled_ms { prop_assert!(h <= now && h > handled); }
        if let Some((first, until)) = d.missed {
            prop_assert!(first > handled && first < until);
            prop_assert!(d.ticks.first().is_none_or(|t| *t >= until));
        }
    }
}
