//! Every coordinator's view of the most recent writes to the jobs bucket
//! (the last [`KEPT`] of them, each job's latest), kept by watching the
//! bucket from a little before its end, so that a page of `reef jobs`
//! comes from memory, whatever the bucket holds behind it. The servers'
//! cost of starting a read in the middle of a long stream grows with the
//! stream; this view pays it once, when the watch starts.
//!
//! A listing walks the view newest write first, exactly as it would walk
//! the stream (`plan::job_query` decides when to stop); a page that needs
//! older writes goes on in the stream below the view. The view starts with
//! the first listing, and a listing first waits (a moment at most) until
//! it has caught up with the bucket's last write.
//!
//! Retention erases a record without a trace a watch would see, and only
//! records last written before its cutoff: before a listing, the view's
//! records that old are read again, and those gone are forgotten.

use super::followed::{Followed, View};
use crate::store::{Bucket, Next, StoreError};
use async_nats::jetstream::kv::{Entry, Operation};
use reef_proto::decode;
use reef_proto::job::JobRecord;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// How many of the latest writes the view keeps.
pub(crate) const KEPT: usize = 4096;

/// One write as the view keeps it: the job's key, when the servers stored
/// it, and the record (None: deleted).
type Kept = (String, u64, Option<JobRecord>);

/// The latest writes, by sequence.
#[derive(Default)]
struct Ring {
    by_seq: BTreeMap<u64, Kept>,
    seq_of: HashMap<String, u64>,
    /// Every write after this sequence is in the ring (or superseded by a
    /// later one that is).
    floor: u64,
}

impl Ring {
    /// Forgets the write at `seq` (its record was erased).
    fn forget(&mut self, seq: u64) {
        if let Some((key, _, _)) = self.by_seq.remove(&seq) {
            if self.seq_of.get(&key) == Some(&seq) {
                self.seq_of.remove(&key);
            }
        }
    }

    fn keep(&mut self, seq: u64, key: String, written_ms: u64, job: Option<JobRecord>) {
        if let Some(older) = self.seq_of.insert(key.clone(), seq) {
            self.by_seq.remove(&older);
        }
        self.by_seq.insert(seq, (key, written_ms, job));
        while self.by_seq.len() > KEPT {
            if let Some((dropped, (key, _, _))) = self.by_seq.pop_first() {
                if self.seq_of.get(&key) == Some(&dropped) {
                    self.seq_of.remove(&key);
                }
                self.floor = dropped;
            }
        }
    }
}

impl View for Ring {
    fn reset(&mut self, last: u64) -> Option<u64> {
        // A little more than the ring keeps: some were rewritten since.
        let from = last.saturating_sub(4 * KEPT as u64).max(1);
        *self = Ring {
            floor: from - 1,
            ..Ring::default()
        };
        Some(from)
    }

    fn take_in(&mut self, entry: Entry) {
        let job = match entry.operation {
            // Kept without its input (up to 256 KiB, which no listing shows).
            Operation::Put => decode::<JobRecord>(&entry.value).ok().map(|mut job| {
                job.spec.stdin = None;
                job
            }),
            Operation::Delete | Operation::Purge => None,
        };
        let written_ms = (entry.created.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
        self.keep(entry.revision, entry.key, written_ms, job);
    }
}

pub(crate) struct RecentJobs {
    bucket: Bucket<JobRecord>,
    /// How long finished jobs are kept: older records may have been erased.
    retain: Duration,
    followed: Followed<Ring>,
}

impl RecentJobs {
    pub(crate) fn new(bucket: Bucket<JobRecord>, retain: Duration, tasks: TaskTracker) -> Self {
        Self {
            followed: Followed::new(bucket.kv().clone(), tasks),
            bucket,
            retain,
        }
    }

    /// Ends the watch.
    pub(crate) fn stop(&self) {
        self.followed.stop();
    }

    /// Visits the view's writes newest first (when the servers stored
    /// each, and the record or None for a deletion) until `visit` stops;
    /// returns whether it did, and the sequence below which the stream
    /// must be read for more.
    pub(crate) async fn newest(
        &self,
        mut visit: impl FnMut(u64, Option<&JobRecord>) -> Next,
    ) -> Result<(Next, u64), StoreError> {
        let last = self.bucket.last_written().await?;
        if !self.followed.caught_up(last).await {
            tracing::debug!(
                last,
                "the recent jobs view is behind; listing from the stream"
            );
            return Ok((Next::More, last + 1));
        }
        self.forget_erased().await?;
        let ring = self.followed.view();
        for (_, written_ms, job) in ring.by_seq.values().rev() {
            if visit(*written_ms, job.as_ref()) == Next::Stop {
                return Ok((Next::Stop, ring.floor + 1));
            }
        }
        Ok((Next::More, ring.floor + 1))
    }

    /// Reads again the records last written before retention's cutoff,
    /// and forgets those retention erased.
    async fn forget_erased(&self) -> Result<(), StoreError> {
        let retain = u64::try_from(self.retain.as_millis()).unwrap_or(u64::MAX);
        let cutoff = reef_proto::now_ms().saturating_sub(retain);
        let old: Vec<(u64, String)> = self
            .followed
            .view()
            .by_seq
            .iter()
            .filter(|(_, (_, written_ms, job))| *written_ms <= cutoff && job.is_some())
            .map(|(seq, (key, _, _))| (*seq, key.clone()))
            .collect();
        for (seq, key) in old {
            if !self.bucket.contains(&key).await? {
                self.followed.view().forget(seq);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_each_jobs_latest_write_and_the_last_few() {
        let mut ring = Ring::default();
        ring.keep(1, "a".into(), 10, None);
        ring.keep(2, "b".into(), 11, None);
        ring.keep(3, "a".into(), 12, None);
        assert_eq!(ring.by_seq.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        for seq in 4..(KEPT as u64 + 10) {
            ring.keep(seq, format!("k{seq}"), seq, None);
        }
        assert_eq!(ring.by_seq.len(), KEPT);
        let oldest = *ring.by_seq.keys().next().expect("kept");
        assert!(
            ring.floor < oldest && ring.floor >= 3,
            "floor {}",
            ring.floor
        );
        assert_eq!(ring.seq_of.len(), KEPT);
        ring.forget(oldest);
        assert_eq!(ring.by_seq.len(), KEPT - 1);
        assert_eq!(
            ring.seq_of.len(),
            KEPT - 1,
            "an erased record is forgotten whole"
        );
    }
}
