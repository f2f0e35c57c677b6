//! Which jobs a page of `job.list` holds, chosen while the jobs bucket is
//! read from its newest write backwards (`Bucket::newest_first`), so that
//! a page of the newest jobs costs about a page of reads however many
//! finished jobs the bucket keeps.
//!
//! A page is the newest jobs by id (ids are time-ordered: newest
//! submitted first) that pass the query's filters. A job's submission
//! comes before its last write, and every job not read yet was last
//! written before the write being read, so once the page holds more than
//! it needs and even its oldest job was submitted after that write, no
//! job still unread can belong on it: the read stops there ([`Page::full`]).
//! Ids carry the submitting coordinator's clock and writes the servers'; a
//! margin of [`CLOCK_MARGIN_MS`] covers the difference between them.

use reef_proto::api::JobQuery;
use reef_proto::job::JobRecord;
use reef_proto::JobId;

/// How far a coordinator's clock may run ahead of the servers' without a
/// page missing a job.
pub const CLOCK_MARGIN_MS: u64 = 5_000;

/// The ms timestamp a uuid v7 id carries (its first 48 bits).
pub fn id_ms(id: JobId) -> u64 {
    let bytes = id.0.as_bytes();
    bytes[..6]
        .iter()
        .fold(0u64, |ms, byte| (ms << 8) | u64::from(*byte))
}

/// The submission times (ms) a job id starting with `prefix` can carry,
/// from its leading hex digits (at most 12 of them make the time).
pub fn prefix_ms(prefix: &str) -> (u64, u64) {
    let digits: Vec<u64> = prefix
        .chars()
        .filter(|c| *c != '-')
        .take(12)
        .map_while(|c| c.to_digit(16).map(u64::from))
        .collect();
    let shift = 4 * (12 - digits.len() as u32);
    let lead = digits.iter().fold(0u64, |acc, d| (acc << 4) | d);
    let lo = lead << shift;
    let hi = lo | ((1u64 << shift) - 1);
    (lo, hi)
}

/// A page being filled.
pub struct Page {
    query: JobQuery,
    owner: Option<String>,
    /// Earliest submission a job matching the prefix can have.
    earliest_ms: u64,
    /// The newest matches so far, newest first, at most `limit + 1` (one
    /// more than shown, to know that more exist).
    jobs: Vec<JobRecord>,
}

impl Page {
    /// An empty page for `query`; with `owner`, only that submitter's jobs.
    pub fn new(query: JobQuery, owner: Option<String>) -> Self {
        let earliest_ms = query.prefix.as_deref().map_or(0, |p| prefix_ms(p).0);
        Self {
            query,
            owner,
            earliest_ms,
            jobs: Vec::new(),
        }
    }

    fn matches(&self, job: &JobRecord) -> bool {
        self.query
            .state
            .as_deref()
            .is_none_or(|s| job.state.name() == s)
            && self.query.before.is_none_or(|before| job.id < before)
            && self
                .query
                .prefix
                .as_deref()
                .is_none_or(|p| job.id.to_string().starts_with(p))
            && self.owner.as_deref().is_none_or(|o| job.spec.owner == o)
    }

    /// Considers `job` for the page (copied only if it goes on it).
    pub fn offer(&mut self, job: &JobRecord) {
        if !self.matches(job) {
            return;
        }
        let keep = self.query.limit as usize + 1;
        let at = self.jobs.partition_point(|held| held.id > job.id);
        if at >= keep || self.jobs.get(at).is_some_and(|held| held.id == job.id) {
            return;
        }
        // A page holds many jobs, each input up to 256 KiB: a listing
        // leaves the input out (a job's own record has it).
        let mut job = job.clone();
        job.spec.stdin = None;
        self.jobs.insert(at, job);
        self.jobs.truncate(keep);
    }

    /// Whether no job last written at or before `written_ms` can change
    /// the page any more.
    pub fn full(&self, written_ms: u64) -> bool {
        let latest_unread = written_ms.saturating_add(CLOCK_MARGIN_MS);
        if latest_unread < self.earliest_ms {
            return true;
        }
        self.jobs.len() > self.query.limit as usize
            && self
                .jobs
                .last()
                .is_some_and(|oldest| id_ms(oldest.id) > latest_unread)
    }

    /// The page, newest first, and whether more jobs matched.
    pub fn finish(mut self) -> (Vec<JobRecord>, bool) {
        let more = self.jobs.len() > self.query.limit as usize;
        self.jobs.truncate(self.query.limit as usize);
        (self.jobs, more)
    }
}

#[cfg(test)]
#[path = "job_query_tests.rs"]
mod tests;
