use super::*;

fn spec() -> CronSpec {
    CronSpec {
        name: "nightly".into(),
        schedule: "0 3 * * *".into(),
        time_zone: "Europe/Berlin".into(),
        overlap: Overlap::Skip,
        catch_up_ms: DEFAULT_CATCH_UP_MS,
        job: JobSpec::new(vec!["true".into()]),
    }
}

#[test]
fn a_good_spec_is_accepted_and_each_bad_part_named() {
    assert_eq!(spec().validate(), Ok(()));
    let mut bad = spec();
    bad.name = "Nightly".into();
    assert!(matches!(bad.validate(), Err(CronError::Name(_))));
    let mut bad = spec();
    bad.schedule = "61 * * * *".into();
    assert!(matches!(bad.validate(), Err(CronError::Schedule(_))));
    let mut bad = spec();
    bad.time_zone = "Europe/Atlantis".into();
    assert!(matches!(bad.validate(), Err(CronError::TimeZone(_))));
    let mut bad = spec();
    bad.catch_up_ms = MAX_CATCH_UP_MS + 1;
    assert!(matches!(bad.validate(), Err(CronError::CatchUp(_))));
    let mut bad = spec();
    bad.job.command.clear();
    assert!(matches!(bad.validate(), Err(CronError::Job(_))));
    let mut bad = spec();
    bad.job.stdin = Some(b"x".to_vec());
    assert!(matches!(bad.validate(), Err(CronError::Job(_))));
}

#[test]
fn overlap_names_round_trip() {
    for overlap in [Overlap::Skip, Overlap::Queue, Overlap::Allow] {
        assert_eq!(Overlap::parse(overlap.name()), Ok(overlap));
    }
    assert!(Overlap::parse("sometimes")
        .unwrap_err()
        .contains("skip, queue, allow"));
}

fn run(tick_ms: u64, outcome: RunOutcome) -> CronRun {
    CronRun {
        tick_ms,
        at_ms: tick_ms,
        outcome,
    }
}

#[test]
fn a_record_keeps_its_latest_runs_newest_first() {
    let mut record = CronRecord {
        spec: spec(),
        created_at_ms: 0,
        handled_ms: 0,
        recent: Vec::new(),
    };
    for tick in 1..=(HISTORY as u64 + 10) {
        record.remember(run(tick, RunOutcome::Started { job: JobId::new() }));
    }
    assert_eq!(record.recent.len(), HISTORY);
    assert_eq!(record.recent[0].tick_ms, HISTORY as u64 + 10);
    assert!(record
        .recent
        .windows(2)
        .all(|w| w[0].tick_ms > w[1].tick_ms));
    // A queued run that starts replaces itself.
    let job = JobId::new();
    record.remember(run(1000, RunOutcome::Queued { job }));
    assert_eq!(record.queued().and_then(CronRun::job), Some(job));
    record.remember(run(1000, RunOutcome::Started { job }));
    assert_eq!(record.queued(), None);
    assert_eq!(record.last_started(), Some(job));
    assert_eq!(
        record.recent.iter().filter(|r| r.tick_ms == 1000).count(),
        1
    );
}

#[test]
fn ticks_read_as_utc_times() {
    assert_eq!(tick_text(1_796_673_605_000), "2026-12-07T20:00:05Z");
}
