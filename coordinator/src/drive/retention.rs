//! Retention: the leader deletes what `plan::retention` says has had its
//! time: finished jobs and allocations, finished instances, releases
//! beyond the newest few, artifacts no release refers to. A pass runs as a
//! task of its own, beside the loop (it touches only finished records,
//! which nothing writes any more, and the releases and artifacts the
//! pure decision says no one needs), every [`every`] of the retention
//! period; the term waits for it to end.
//!
//! The jobs, allocations and instances buckets are read oldest write first
//! and only up to the cutoff; what goes is erased with its every message,
//! so the buckets shrink back. At most [`MAX_PER_PASS`] records of each
//! kind go in one pass; the next pass goes on.

use super::Coordinator;
use crate::error::{CoordinatorError, Report};
use crate::plan::retention::Policy;
use crate::store::{Bucket, Next, Store, Stored};
use futures::StreamExt;
use reef_proto::{now_ms, JobId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Most records of one kind a pass deletes.
const MAX_PER_PASS: usize = 20_000;
/// Deletions in flight at once.
const IN_FLIGHT: usize = 64;

/// How often a pass runs: a tenth of the retention period, between a
/// second and a minute.
pub(crate) fn every(policy: &Policy) -> Duration {
    (policy.retain / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// What a pass deleted.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    jobs: usize,
    allocs: usize,
    instances: usize,
    releases: usize,
    artifacts: usize,
}

/// The leader's retention: its policy and the pass under way.
pub(crate) struct Retention {
    pub(crate) policy: Policy,
    pass: Option<JoinHandle<Result<Swept, CoordinatorError>>>,
    started: Option<Instant>,
    stop: CancellationToken,
}

impl Retention {
    pub(crate) fn new(policy: Policy) -> Self {
        Self {
            policy,
            pass: None,
            started: None,
            stop: CancellationToken::new(),
        }
    }

    /// Stops the pass under way, and waits for it (a few seconds at most).
    pub(crate) async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(pass) = self.pass.take() {
            if tokio::time::timeout(Duration::from_secs(10), pass)
                .await
                .is_err()
            {
                tracing::warn!("a retention pass did not stop in time");
            }
        }
    }
}

impl Coordinator {
    /// Starts a retention pass when one is due and none runs; notes how
    /// the last one ended.
    pub(crate) async fn retention_tick(&mut self) {
        if let Some(pass) = self.retention.pass.take_if(|p| p.is_finished()) {
            match pass.await {
                Ok(Ok(swept)) => tracing::debug!(?swept, "retention pass done"),
                Ok(Err(e)) => {
                    tracing::warn!(error = %Report(&e), "retention pass failed; the next one goes on")
                }
                Err(e) => tracing::warn!(error = %Report(&e), "retention pass failed"),
            }
        }
        let due = self
            .retention
            .started
            .is_none_or(|at| at.elapsed() >= every(&self.retention.policy));
        if self.retention.pass.is_some() || !due {
            return;
        }
        self.retention.started = Some(Instant::now());
        // The versions live instances run: their releases stay.
        let mut in_use: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        for instance in self.cluster.instances() {
            in_use
                .entry(instance.app.clone())
                .or_default()
                .insert(instance.version);
        }
        let (store, policy, stop) = (
            self.store.clone(),
            self.retention.policy,
            self.retention.stop.clone(),
        );
        self.retention.pass = Some(tokio::spawn(pass(store, policy, in_use, stop)));
    }
}

/// One pass over every kind of record.
async fn pass(
    store: Store,
    policy: Policy,
    in_use: BTreeMap<String, BTreeSet<u32>>,
    stop: CancellationToken,
) -> Result<Swept, CoordinatorError> {
    let now = now_ms();
    let mut swept = Swept::default();
    let current: HashMap<String, u32> = store
        .apps
        .all()
        .await?
        .into_iter()
        .map(|app| (app.name, app.version))
        .collect();

    // Jobs; a copy of a replicated job once its group has its verdict.
    let mut expired = Vec::new();
    let mut undecided: HashMap<JobId, bool> = HashMap::new();
    let candidates = oldest(&store.jobs, &policy, now, |job| {
        job.state.is_terminal().then_some(job)
    })
    .await?;
    for job in candidates {
        let decided = match job.replica {
            None => true,
            Some(replica) => match undecided.get(&replica.group) {
                Some(decided) => *decided,
                None => {
                    let decided = store
                        .jobs
                        .get(&replica.group.to_string())
                        .await?
                        .is_none_or(|(first, _)| {
                            first.verification.is_none_or(|v| v.verdict.is_some())
                        });
                    undecided.insert(replica.group, decided);
                    decided
                }
            },
        };
        if policy.job_expired(&job, decided, now) {
            expired.push(job.id.to_string());
        }
    }
    swept.jobs = erase(&store.jobs, expired, &stop).await?;

    // Allocations.
    let expired = oldest(&store.allocs, &policy, now, |alloc| {
        policy
            .alloc_expired(&alloc, now)
            .then(|| alloc.id.to_string())
    })
    .await?;
    swept.allocs = erase(&store.allocs, expired, &stop).await?;

    // Instances: past releases' go sooner, so the pass reads further.
    let sooner = Policy {
        retain: policy
            .retain
            .min(crate::plan::retention::PAST_RELEASE_GRACE),
        ..policy
    };
    let expired = oldest(&store.instances, &sooner, now, |instance| {
        let current = current.get(&instance.app).copied();
        policy
            .instance_expired(&instance, current, now)
            .then(|| instance.id.to_string())
    })
    .await?;
    swept.instances = erase(&store.instances, expired, &stop).await?;

    // Releases beyond the newest few, of apps that still exist.
    let mut versions: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let release_keys = store.releases.keys().await?;
    for key in &release_keys {
        if let Some((app, version)) = key.rsplit_once('.') {
            if let Ok(version) = version.parse() {
                versions.entry(app.to_string()).or_default().push(version);
            }
        }
    }
    let none = BTreeSet::new();
    let mut gone = Vec::new();
    for app in store.apps.all().await? {
        let Some(of_app) = versions.get(&app.name) else {
            continue;
        };
        let used = in_use.get(&app.name).unwrap_or(&none);
        for version in policy.releases_to_delete(&app, of_app, used) {
            gone.push(reef_proto::subjects::release_key(&app.name, version));
        }
    }
    let kept: Vec<String> = release_keys
        .into_iter()
        .filter(|k| !gone.contains(k))
        .collect();
    swept.releases = erase(&store.releases, gone, &stop).await?;

    // Artifacts no release refers to.
    let referred: BTreeSet<String> = store
        .releases
        .read_many(kept)
        .await?
        .into_iter()
        .map(|(_, release, _)| release.artifact.digest)
        .collect();
    let mut stored = Vec::new();
    let mut list = store
        .artifacts
        .list()
        .await
        .map_err(|e| CoordinatorError::setup("the artifact list", e))?;
    while let Some(info) = list.next().await {
        let info = info.map_err(|e| CoordinatorError::setup("the artifact list", e))?;
        if info.deleted {
            continue;
        }
        let at = info
            .modified
            .map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64);
        stored.push((info.name, at));
    }
    for digest in policy.artifacts_to_delete(&stored, &referred, now) {
        if stop.is_cancelled() {
            break;
        }
        match store.artifacts.delete(&digest).await {
            Ok(()) => swept.artifacts += 1,
            Err(e) => tracing::warn!(%digest, error = %Report(&e), "could not delete an artifact"),
        }
    }
    if swept.jobs + swept.allocs + swept.instances + swept.releases + swept.artifacts > 0 {
        tracing::info!(
            jobs = swept.jobs,
            allocs = swept.allocs,
            instances = swept.instances,
            releases = swept.releases,
            artifacts = swept.artifacts,
            "retention: deleted what had its time"
        );
    }
    Ok(swept)
}

/// What `pick` takes of `bucket`'s records, read oldest write first up to
/// `policy`'s cutoff, at most [`MAX_PER_PASS`].
async fn oldest<T: Stored, R>(
    bucket: &Bucket<T>,
    policy: &Policy,
    now: u64,
    mut pick: impl FnMut(T) -> Option<R>,
) -> Result<Vec<R>, CoordinatorError> {
    let mut picked = Vec::new();
    // Nothing old enough: not even a read of the oldest write.
    match bucket.oldest_written_ms().await? {
        Some(oldest) if !policy.past_cutoff(oldest, now) => {}
        _ => return Ok(picked),
    }
    bucket
        .oldest_first(|entry| {
            if policy.past_cutoff(entry.written_ms, now) || picked.len() >= MAX_PER_PASS {
                return Next::Stop;
            }
            picked.extend(entry.value.and_then(&mut pick));
            Next::More
        })
        .await?;
    Ok(picked)
}

/// Erases `keys` from `bucket`, a few at a time, until `stop`; how many went.
async fn erase<T: Stored>(
    bucket: &Bucket<T>,
    keys: Vec<String>,
    stop: &CancellationToken,
) -> Result<usize, CoordinatorError> {
    let results: Vec<_> = futures::stream::iter(keys)
        .take_while(|_| std::future::ready(!stop.is_cancelled()))
        .map(|key| {
            let bucket = bucket.clone();
            async move { bucket.erase(&key).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut erased = 0;
    for result in results {
        result?;
        erased += 1;
    }
    Ok(erased)
}
