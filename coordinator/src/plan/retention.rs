//! What the leader deletes, and when: pure functions of the records and
//! the time, so that nothing a running cluster needs goes.
//!
//! - A finished job, and a finished allocation, goes once it finished
//!   longer ago than the retention period (7 days by default,
//!   `--retain-jobs`); the copies of a replicated job only once the group
//!   has its verdict.
//! - A finished instance goes once it ended longer ago than the retention
//!   period, or, when its release is no longer the app's (or the app is
//!   gone), once it ended longer ago than [`PAST_RELEASE_GRACE`] (or the
//!   retention period, if shorter): the reconciler remembers endings of the
//!   current release for its backoffs, those of past releases nobody needs.
//! - Of an app's releases, the newest `keep` (10 by default,
//!   `--keep-releases`) stay, and so does any release the app runs now,
//!   would revert to, or has a live instance of.
//! - An artifact goes once no release refers to it and it is older than
//!   the grace (an upload whose deploy has not recorded its release yet is
//!   newer).
//!
//! The buckets are read oldest write first; a record written after the
//! cutoff cannot have ended before it, so a pass stops there
//! ([`Policy::past_cutoff`]). `drive/retention.rs` reads, calls these, and
//! erases.

use reef_proto::alloc::Allocation;
use reef_proto::app::{AppRecord, Instance};
use reef_proto::job::JobRecord;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a finished instance of a past release is kept at most.
pub const PAST_RELEASE_GRACE: Duration = Duration::from_secs(3600);

/// What is kept, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long finished jobs, allocations and instances are kept.
    pub retain: Duration,
    /// How many releases of an app are kept (besides those still needed).
    pub keep_releases: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            retain: Duration::from_secs(7 * 24 * 3600),
            keep_releases: 10,
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Policy {
    /// The newest end time a record may have to be deleted at `now_ms`.
    fn cutoff(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(ms(self.retain))
    }

    /// Whether a record last written at `written_ms` (and every one
    /// written after it) is too recent to have ended before the cutoff:
    /// an oldest-first pass stops there.
    pub fn past_cutoff(&self, written_ms: u64, now_ms: u64) -> bool {
        written_ms > self.cutoff(now_ms)
    }

    /// Whether `job` goes: finished before the cutoff, and, for a copy of
    /// a replicated job, its group decided (`group_decided`).
    pub fn job_expired(&self, job: &JobRecord, group_decided: bool, now_ms: u64) -> bool {
        if !job.state.is_terminal() {
            return false;
        }
        if job.replica.is_some() && !group_decided {
            return false;
        }
        let ended = job.finished_at_ms.unwrap_or(job.submitted_at_ms);
        ended <= self.cutoff(now_ms)
    }

    /// Whether `alloc` goes: finished before the cutoff.
    pub fn alloc_expired(&self, alloc: &Allocation, now_ms: u64) -> bool {
        alloc.state.is_terminal() && alloc.updated_at_ms <= self.cutoff(now_ms)
    }

    /// Whether `instance` goes; `current` is its app's current release
    /// (None: the app is gone).
    pub fn instance_expired(&self, instance: &Instance, current: Option<u32>, now_ms: u64) -> bool {
        if !instance.state.is_terminal() {
            return false;
        }
        let past = current != Some(instance.version);
        let keep_for = match past {
            true => self.retain.min(PAST_RELEASE_GRACE),
            false => self.retain,
        };
        instance.updated_at_ms <= now_ms.saturating_sub(ms(keep_for))
    }

    /// The versions of `app`'s releases (given in `versions`) that go: all
    /// but the newest `keep_releases`, the current one, the one a rollout
    /// would revert to, and any with a live instance (`in_use`).
    pub fn releases_to_delete(
        &self,
        app: &AppRecord,
        versions: &[u32],
        in_use: &BTreeSet<u32>,
    ) -> Vec<u32> {
        let mut newest: Vec<u32> = versions.to_vec();
        newest.sort_unstable_by(|a, b| b.cmp(a));
        newest.dedup();
        newest
            .into_iter()
            .skip(self.keep_releases as usize)
            .filter(|v| *v != app.version && Some(*v) != app.revert_to && !in_use.contains(v))
            .rev()
            .collect()
    }

    /// The artifacts (digest, when stored) that go: referred to by no
    /// release, and older than the grace, the shorter of an hour and the
    /// retention period.
    pub fn artifacts_to_delete(
        &self,
        stored: &[(String, u64)],
        referred: &BTreeSet<String>,
        now_ms: u64,
    ) -> Vec<String> {
        let grace = ms(self.retain.min(PAST_RELEASE_GRACE));
        stored
            .iter()
            .filter(|(digest, at)| {
                !referred.contains(digest) && *at <= now_ms.saturating_sub(grace)
            })
            .map(|(digest, _)| digest.clone())
            .collect()
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
