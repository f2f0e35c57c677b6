//! Periodic jobs: what `reef cron add` declares, what the leader keeps for
//! each, and the claim that makes each tick run once.
//!
//! - `schedule`: the cron expression and the instants it fires at.

pub mod schedule;

pub use schedule::{time_zone, Schedule, ScheduleError};

use crate::envelope::{Message, MessageKind};
use crate::job::{JobSpec, JobState};
use crate::JobId;
use serde::{Deserialize, Serialize};

/// The most runs a periodic job's record remembers (`reef cron history`).
pub const HISTORY: usize = 50;
/// How late a tick may run by default, when no leader was up at its time.
pub const DEFAULT_CATCH_UP_MS: u64 = 60_000;
/// The latest a tick may ever run.
pub const MAX_CATCH_UP_MS: u64 = 24 * 3600 * 1000;
/// How long a tick's claim is kept: longer than any tick may run late.
pub const CLAIM_MAX_AGE_MS: u64 = MAX_CATCH_UP_MS + 3600 * 1000;

/// What happens to a tick while the previous run has not ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Overlap {
    /// The tick is skipped (and recorded as skipped).
    #[default]
    Skip,
    /// The tick runs when the previous run ends; one waits at most, later
    /// ticks meanwhile are skipped.
    Queue,
    /// The tick runs beside it.
    Allow,
}

impl Overlap {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "skip" => Ok(Self::Skip),
            "queue" => Ok(Self::Queue),
            "allow" => Ok(Self::Allow),
            other => Err(format!(
                "overlap {other:?} is not one of skip, queue, allow"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Queue => "queue",
            Self::Allow => "allow",
        }
    }
}

/// A periodic job as declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronSpec {
    /// 1-63 of `[a-z0-9-]`, unique in the cluster.
    pub name: String,
    /// The cron expression, as written ([`Schedule::parse`]).
    pub schedule: String,
    /// The IANA time zone its wall times are read in.
    pub time_zone: String,
    pub overlap: Overlap,
    /// How late a tick may still run when no leader was up at its time;
    /// older ones are recorded as missed. 0: never late.
    pub catch_up_ms: u64,
    /// What each tick runs (its owner is whoever added it).
    pub job: JobSpec,
}

/// Why a periodic job was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("name: {0}")]
    Name(String),
    #[error("schedule: {0}")]
    Schedule(ScheduleError),
    #[error("time zone: {0}")]
    TimeZone(String),
    #[error("catch-up: {0}")]
    CatchUp(String),
    #[error("job: {0}")]
    Job(String),
}

impl CronSpec {
    pub fn validate(&self) -> Result<(), CronError> {
        crate::manifest::validate_app_name(&self.name)
            .map_err(|_| CronError::Name(format!(
                "{:?} is not a valid name: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'",
                self.name
            )))?;
        Schedule::parse(&self.schedule).map_err(CronError::Schedule)?;
        time_zone(&self.time_zone).map_err(CronError::TimeZone)?;
        if self.catch_up_ms > MAX_CATCH_UP_MS {
            return Err(CronError::CatchUp(format!(
                "at most 24h, not {}",
                crate::units::format_duration(std::time::Duration::from_millis(self.catch_up_ms))
            )));
        }
        self.job
            .validate()
            .map_err(|e| CronError::Job(e.to_string()))?;
        if self.job.stdin.is_some() {
            return Err(CronError::Job(
                "a periodic job reads no standard input".into(),
            ));
        }
        Ok(())
    }

    /// Its schedule and time zone, parsed (valid specs only).
    pub fn parsed(&self) -> Result<(Schedule, jiff::tz::TimeZone), CronError> {
        Ok((
            Schedule::parse(&self.schedule).map_err(CronError::Schedule)?,
            time_zone(&self.time_zone).map_err(CronError::TimeZone)?,
        ))
    }
}

/// What became of one tick.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunOutcome {
    /// Its job was submitted.
    Started { job: JobId },
    /// Waiting for the previous run to end; its job will have this id.
    Queued { job: JobId },
    /// Not run: why.
    Skipped { reason: String },
    /// Ticks from `tick_ms` up to (not including) `until_ms` came while no
    /// leader was up, too long ago to run.
    Missed { until_ms: u64 },
}

/// One tick and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRun {
    /// The instant the tick was due.
    pub tick_ms: u64,
    /// When the leader handled it.
    pub at_ms: u64,
    pub outcome: RunOutcome,
}

impl CronRun {
    /// The job this run started or will start.
    pub fn job(&self) -> Option<JobId> {
        match self.outcome {
            RunOutcome::Started { job } | RunOutcome::Queued { job } => Some(job),
            _ => None,
        }
    }
}

/// A periodic job in the cron bucket (key: its name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronRecord {
    pub spec: CronSpec,
    pub created_at_ms: u64,
    /// Every tick up to this instant has been handled; the next is due
    /// after it.
    pub handled_ms: u64,
    /// The latest runs, newest first, at most [`HISTORY`].
    pub recent: Vec<CronRun>,
}

impl CronRecord {
    /// The run waiting for the previous one, if any.
    pub fn queued(&self) -> Option<&CronRun> {
        self.recent
            .iter()
            .find(|run| matches!(run.outcome, RunOutcome::Queued { .. }))
    }

    /// The newest run that started a job.
    pub fn last_started(&self) -> Option<JobId> {
        self.recent.iter().find_map(|run| match run.outcome {
            RunOutcome::Started { job } => Some(job),
            _ => None,
        })
    }

    /// Records `run` (newest first), keeping [`HISTORY`] runs; a run for a
    /// tick already recorded replaces it (a queued run that started).
    pub fn remember(&mut self, run: CronRun) {
        self.recent.retain(|old| old.tick_ms != run.tick_ms);
        let at = self
            .recent
            .iter()
            .position(|old| old.tick_ms < run.tick_ms)
            .unwrap_or(self.recent.len());
        self.recent.insert(at, run);
        self.recent.truncate(HISTORY);
    }
}

/// The claim on one tick (cron-ticks bucket, key [`crate::subjects::cron_tick_key`]):
/// whoever creates it decides the tick, once; a leader that finds it
/// carries out what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronClaim {
    pub run: CronRun,
}

/// A job's origin when a periodic job started it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronTick {
    pub name: String,
    pub tick_ms: u64,
}

/// A periodic job as `reef cron list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronStatus {
    pub record: CronRecord,
    /// The next tick, if the schedule has one.
    pub next_ms: Option<u64>,
}

/// One run as `reef cron history` shows it: the run, and its job's state
/// where it has one still on record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    pub run: CronRun,
    pub job: Option<JobState>,
}

impl Message for CronRecord {
    const KIND: MessageKind = MessageKind::CronRecord;
}

impl Message for CronClaim {
    const KIND: MessageKind = MessageKind::CronClaim;
}

/// A tick's instant as the variable `REEF_CRON_TICK` gives it: RFC 3339 in
/// UTC, to the second.
pub fn tick_text(tick_ms: u64) -> String {
    jiff::Timestamp::from_millisecond(tick_ms as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| tick_ms.to_string())
}

#[cfg(test)]
mod tests;
