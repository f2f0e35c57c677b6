//! Periodic jobs: which ticks are due, and what becomes of each.
//!
//! A tick whose time came while no leader was up runs late if it is at
//! most the job's catch-up window old; older ones are recorded once, as a
//! missed range. Ticks are then taken in order: a tick whose previous run
//! has not ended is skipped, queued (one at most) or run beside it, as
//! the job's overlap says.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use reef_proto::cron::{Overlap, RunOutcome, Schedule};
use reef_proto::JobId;

/// The most ticks of one job decided at once; older due ones are missed.
pub(crate) const MAX_DUE: usize = 100;

/// The ticks of one job that are due.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Due {
    /// To run (or skip, or queue), oldest first.
    pub(crate) ticks: Vec<u64>,
    /// Too old to run: from the first such tick up to (not including) this
    /// instant.
    pub(crate) missed: Option<(u64, u64)>,
    /// The last tick handled once these are: the job's new `handled_ms`.
    pub(crate) handled_ms: Option<u64>,
    /// The first tick after now.
    pub(crate) next_ms: Option<u64>,
}

fn instant(ms: u64) -> Option<Timestamp> {
    Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()
}

fn millis(t: Timestamp) -> u64 {
    u64::try_from(t.as_millisecond()).unwrap_or(0)
}

/// The ticks after `handled_ms` up to `now_ms`.
pub(crate) fn due(
    schedule: &Schedule,
    tz: &TimeZone,
    handled_ms: u64,
    now_ms: u64,
    catch_up_ms: u64,
) -> Due {
    let (Some(handled), Some(now)) = (instant(handled_ms), instant(now_ms)) else {
        return Due::default();
    };
    let mut due = Due::default();
    let Some(mut tick) = schedule.next_after(handled, tz) else {
        return due;
    };
    let cutoff = now_ms.saturating_sub(catch_up_ms);
    if tick <= now && millis(tick) < cutoff {
        // Skip ahead without walking each old tick: the first one that
        // may still run is the first at or after the cutoff.
        let first_missed = millis(tick);
        let resume =
            instant(cutoff.saturating_sub(1)).and_then(|before| schedule.next_after(before, tz));
        let last_missed_before = resume.map_or(now_ms + 1, millis).min(now_ms + 1);
        due.missed = Some((first_missed, last_missed_before));
        // Every tick before `resume` is handled once the range is recorded.
        due.handled_ms = Some(last_missed_before.saturating_sub(1).max(first_missed));
        match resume {
            Some(next) => tick = next,
            None => return due,
        }
    }
    while tick <= now {
        due.ticks.push(millis(tick));
        due.handled_ms = Some(millis(tick));
        match schedule.next_after(tick, tz) {
            Some(next) => tick = next,
            None => {
                due.next_ms = None;
                return trimmed(due);
            }
        }
    }
    due.next_ms = Some(millis(tick));
    trimmed(due)
}

/// At most [`MAX_DUE`] ticks run late; the older ones join the missed range.
fn trimmed(mut due: Due) -> Due {
    if due.ticks.len() > MAX_DUE {
        let dropped: Vec<u64> = due.ticks.drain(..due.ticks.len() - MAX_DUE).collect();
        let first = due.missed.map_or(dropped[0], |(first, _)| first);
        due.missed = Some((first, due.ticks[0]));
    }
    due
}

/// What the leader knows of a job's runs when its ticks are due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Runs {
    pub(crate) overlap: Overlap,
    /// The latest started run's job has not ended.
    pub(crate) running: bool,
    /// A run waiting for it: its tick and job.
    pub(crate) queued: Option<(u64, JobId)>,
}

/// One decision, in order: each is claimed, then carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) tick_ms: u64,
    pub(crate) outcome: RunOutcome,
}

impl Step {
    /// A queued run that now starts (its claim says `Queued`).
    pub(crate) fn starts_queued(&self, runs: &Runs) -> bool {
        matches!(
            (&self.outcome, runs.queued),
            (RunOutcome::Started { job }, Some((tick, queued))) if tick == self.tick_ms && *job == queued
        )
    }
}

/// What becomes of the queued run and of each due tick. `new_job` names
/// the job a run will have.
pub(crate) fn decide(runs: &Runs, due: &Due, mut new_job: impl FnMut() -> JobId) -> Vec<Step> {
    let mut steps = Vec::new();
    if let Some((first, until)) = due.missed {
        steps.push(Step {
            tick_ms: first,
            outcome: RunOutcome::Missed { until_ms: until },
        });
    }
    let mut running = runs.running;
    let mut waiting = runs.queued;
    if let (Some((tick, job)), false) = (waiting, running) {
        steps.push(Step {
            tick_ms: tick,
            outcome: RunOutcome::Started { job },
        });
        running = true;
        waiting = None;
    }
    for &tick in &due.ticks {
        let outcome = match (runs.overlap, running) {
            (Overlap::Allow, _) | (_, false) => {
                running = true;
                RunOutcome::Started { job: new_job() }
            }
            (Overlap::Skip, true) => RunOutcome::Skipped {
                reason: "the previous run had not ended".into(),
            },
            (Overlap::Queue, true) if waiting.is_none() => {
                let job = new_job();
                waiting = Some((tick, job));
                RunOutcome::Queued { job }
            }
            (Overlap::Queue, true) => RunOutcome::Skipped {
                reason: "the previous run had not ended and another waited for it".into(),
            },
        };
        steps.push(Step {
            tick_ms: tick,
            outcome,
        });
    }
    steps
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
