//! Where a term as leader starts: the records its view is built from.
//!
//! The leader writes a [`Checkpoint`] every [`CHECKPOINT_EVERY`], once its
//! view is loaded, and when it shuts down cleanly: the live jobs, allocations and instances, the
//! instances that ended within the reconciler's memory, the replicated
//! jobs' groups and standings, and where each of the three buckets' streams
//! stood. It reads the positions first, then copies the view, with no await
//! in between and no other writer of those buckets, so the view holds every
//! write up to the positions. The next leader reads the records the
//! checkpoint names, then only what was written to each bucket after its
//! position: its start costs the live work and the last seconds of writes,
//! not every finished job the buckets keep. Without a checkpoint (a new
//! cluster, or one it cannot read) it reads every record.

use super::Coordinator;
use crate::error::{CoordinatorError, Report};
use crate::plan::replication;
use crate::plan::verdict::Standing;
use crate::store::{Bucket, Next, Store, StoreError, Stored};
use reef_proto::alloc::Allocation;
use reef_proto::app::Instance;
use reef_proto::job::JobRecord;
use reef_proto::leader::Checkpoint;
use reef_proto::{now_ms, subjects, JobId, NodeId};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// How often the leader writes its checkpoint.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// What a term's view is built from.
pub(crate) struct Records {
    /// Every job that may be live (and, read without a checkpoint, every job).
    pub jobs: Vec<JobRecord>,
    pub allocs: Vec<Allocation>,
    /// Live instances and those that ended lately.
    pub instances: Vec<Instance>,
    pub groups: HashMap<JobId, BTreeSet<NodeId>>,
    pub standing: HashMap<NodeId, Standing>,
}

/// The records a term starts from: from the checkpoint when there is one.
pub(crate) async fn read(store: &Store) -> Result<Records, CoordinatorError> {
    match store.checkpoints.get(subjects::CHECKPOINT_KEY).await {
        Ok(Some((checkpoint, _))) => since(store, checkpoint).await,
        Ok(None) => everything(store).await,
        Err(e @ StoreError::Corrupt { .. }) => {
            tracing::warn!(error = %Report(&e), "the checkpoint is unreadable; reading every record");
            everything(store).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Every record in the three buckets.
async fn everything(store: &Store) -> Result<Records, CoordinatorError> {
    let jobs = store.jobs.all().await?;
    let replicated = replication::load(&jobs);
    Ok(Records {
        allocs: store.allocs.all().await?,
        instances: store.instances.all().await?,
        jobs,
        groups: replicated.groups,
        standing: replicated.standing,
    })
}

/// The records `named` (read now), updated with everything written to the
/// bucket after `after`; and which of them were written after it.
async fn named_and_since<T: Stored + Clone>(
    bucket: &Bucket<T>,
    named: Vec<String>,
    after: u64,
) -> Result<(Vec<T>, Vec<T>), StoreError> {
    let mut latest: HashMap<String, T> = bucket
        .read_many(named)
        .await?
        .into_iter()
        .map(|(key, value, _)| (key, value))
        .collect();
    let mut written = Vec::new();
    bucket
        .written_after(after, |entry| {
            match entry.value {
                Some(value) => {
                    written.push(value.clone());
                    latest.insert(entry.key, value);
                }
                None => {
                    latest.remove(&entry.key);
                }
            }
            Next::More
        })
        .await?;
    Ok((latest.into_values().collect(), written))
}

/// Ids as bucket keys.
fn keys<T: ToString>(ids: impl IntoIterator<Item = T>) -> Vec<String> {
    ids.into_iter().map(|id| id.to_string()).collect()
}

async fn since(store: &Store, checkpoint: Checkpoint) -> Result<Records, CoordinatorError> {
    let live_jobs = keys(&checkpoint.live_jobs);
    let (jobs, new_jobs) = named_and_since(&store.jobs, live_jobs, checkpoint.jobs_seq).await?;
    let live_allocs = keys(&checkpoint.live_allocs);
    let (allocs, _) = named_and_since(&store.allocs, live_allocs, checkpoint.allocs_seq).await?;
    let instances = keys(
        checkpoint
            .live_instances
            .iter()
            .chain(&checkpoint.recent_endings),
    );
    let (instances, _) =
        named_and_since(&store.instances, instances, checkpoint.instances_seq).await?;
    // Verdicts decided after the checkpoint are in the jobs written since.
    let replicated = replication::load(&new_jobs);
    let mut standing: HashMap<NodeId, Standing> = checkpoint
        .standing
        .iter()
        .map(|(node, agreed, disagreed)| {
            (
                *node,
                Standing {
                    agreed: *agreed,
                    disagreed: *disagreed,
                },
            )
        })
        .collect();
    for (node, s) in replicated.standing {
        let entry = standing.entry(node).or_default();
        entry.agreed += s.agreed;
        entry.disagreed += s.disagreed;
    }
    let mut groups: HashMap<JobId, BTreeSet<NodeId>> = checkpoint
        .groups
        .into_iter()
        .map(|(group, nodes)| (group, nodes.into_iter().collect()))
        .collect();
    let live_groups = replication::load(&jobs).groups;
    for (group, nodes) in live_groups.into_iter().chain(replicated.groups) {
        groups.entry(group).or_default().extend(nodes);
    }
    for job in &new_jobs {
        if job
            .verification
            .as_ref()
            .is_some_and(|v| v.verdict.is_some())
        {
            groups.remove(&job.id);
        }
    }
    tracing::info!(
        jobs = jobs.len(),
        allocs = allocs.len(),
        instances = instances.len(),
        "state read from the checkpoint and what was written since"
    );
    Ok(Records {
        jobs,
        allocs,
        instances,
        groups,
        standing,
    })
}

impl Coordinator {
    /// Writes the checkpoint if it is due.
    pub(crate) async fn checkpoint_tick(&mut self) {
        if self
            .checkpointed
            .is_some_and(|at| at.elapsed() < CHECKPOINT_EVERY)
        {
            return;
        }
        self.checkpointed = Some(std::time::Instant::now());
        if let Err(e) = self.write_checkpoint().await {
            tracing::warn!(error = %Report(&e), "could not write the checkpoint; will retry");
        }
    }

    /// Writes where the next leader starts.
    pub(crate) async fn write_checkpoint(&mut self) -> Result<(), CoordinatorError> {
        let jobs_seq = self.store.jobs.last_written().await?;
        let allocs_seq = self.store.allocs.last_written().await?;
        let instances_seq = self.store.instances.last_written().await?;
        // No await from here to the write: the view is the one at those positions.
        let now = now_ms();
        let mut live_jobs: BTreeSet<JobId> = self.cluster.pending().keys().copied().collect();
        live_jobs.extend(self.cluster.allocs().map(|a| a.job));
        let checkpoint = Checkpoint {
            at_ms: now,
            jobs_seq,
            allocs_seq,
            instances_seq,
            live_jobs: live_jobs.into_iter().collect(),
            live_allocs: self.cluster.allocs().map(|a| a.id).collect(),
            live_instances: self.cluster.instances().map(|i| i.id).collect(),
            recent_endings: self.converger.recently_ended(now),
            standing: self
                .cluster
                .standings()
                .map(|(node, s)| (node, s.agreed, s.disagreed))
                .collect(),
            groups: self
                .cluster
                .groups()
                .map(|(group, nodes)| (group, nodes.iter().copied().collect()))
                .collect(),
        };
        self.store
            .checkpoints
            .put(subjects::CHECKPOINT_KEY, &checkpoint)
            .await?;
        Ok(())
    }
}
