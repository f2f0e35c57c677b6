//! Every coordinator's view of the live app instances, kept by watching
//! the instances bucket, so that `app.status` and `app.list` read only the
//! app's own instances, not every instance the bucket keeps. The watch
//! starts with the first read that needs it; a read first waits (a moment
//! at most) until the view has caught up with the bucket's last write, so
//! an answer includes every write made before the request.

use crate::error::Report;
use crate::store::{Bucket, StoreError};
use async_nats::jetstream::kv::{Entry, Operation};
use futures::StreamExt;
use reef_proto::app::Instance;
use reef_proto::{decode, InstanceId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest a read waits for the view to catch up before answering with it.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// Pause before watching again after the watch failed.
const REWATCH_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct LiveInstances {
    bucket: Bucket<Instance>,
    tasks: TaskTracker,
    live: Arc<Mutex<HashMap<InstanceId, Instance>>>,
    /// The highest revision of the bucket the view has taken in.
    seen: watch::Sender<u64>,
    started: AtomicBool,
    stop: CancellationToken,
}

impl LiveInstances {
    pub(crate) fn new(bucket: Bucket<Instance>, tasks: TaskTracker) -> Self {
        Self {
            bucket,
            tasks,
            live: Arc::default(),
            seen: watch::Sender::new(0),
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
        }
    }

    /// Ends the watch.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// The live instances of `app`, by id.
    pub(crate) async fn of(&self, app: &str) -> Result<Vec<Instance>, StoreError> {
        if !self.started.swap(true, Ordering::SeqCst) {
            self.tasks.spawn(follow(
                self.bucket.clone(),
                self.live.clone(),
                self.seen.clone(),
                self.stop.clone(),
            ));
        }
        let last = self.bucket.last_written().await?;
        let mut seen = self.seen.subscribe();
        if tokio::time::timeout(CATCH_UP_WAIT, seen.wait_for(|s| *s >= last))
            .await
            .is_err()
        {
            tracing::debug!(
                last,
                "the instances view is behind; answering with what it has"
            );
        }
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let mut instances: Vec<Instance> =
            live.values().filter(|i| i.app == app).cloned().collect();
        instances.sort_by_key(|i| i.id);
        Ok(instances)
    }
}

/// Keeps `live` in line with the bucket until `stop`, watching again after
/// a failure (from scratch: every key's latest value first).
async fn follow(
    bucket: Bucket<Instance>,
    live: Arc<Mutex<HashMap<InstanceId, Instance>>>,
    seen: watch::Sender<u64>,
    stop: CancellationToken,
) {
    loop {
        let watched = tokio::select! {
            () = stop.cancelled() => return,
            watched = bucket.kv().watch_with_history(">") => watched,
        };
        match watched {
            Ok(mut entries) => {
                live.lock().unwrap_or_else(PoisonError::into_inner).clear();
                loop {
                    let entry = tokio::select! {
                        () = stop.cancelled() => return,
                        entry = entries.next() => entry,
                    };
                    match entry {
                        Some(Ok(entry)) => take_in(&live, &seen, entry),
                        Some(Err(e)) => {
                            tracing::warn!(error = %Report(&e), "the instances watch failed; watching again");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(e) => tracing::warn!(error = %Report(&e), "cannot watch the instances bucket yet"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REWATCH_AFTER) => {}
        }
    }
}

fn take_in(live: &Mutex<HashMap<InstanceId, Instance>>, seen: &watch::Sender<u64>, entry: Entry) {
    if let Ok(id) = entry.key.parse::<InstanceId>() {
        let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
        let instance = match entry.operation {
            Operation::Put => decode::<Instance>(&entry.value).ok(),
            Operation::Delete | Operation::Purge => None,
        };
        match instance {
            Some(instance) if !instance.state.is_terminal() => {
                live.insert(id, instance);
            }
            _ => {
                live.remove(&id);
            }
        }
    }
    seen.send_if_modified(|s| {
        let newer = entry.revision > *s;
        if newer {
            *s = entry.revision;
        }
        newer
    });
}
