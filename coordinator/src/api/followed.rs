//! A view of a bucket kept in memory by watching it: started by the first
//! read that needs it, started again from scratch after the watch fails,
//! ended on shutdown. A read first waits (a moment at most) until the view
//! has taken in the bucket's last write, so an answer includes every write
//! made before the request. What the view holds, and from where it
//! watches, is the [`View`]'s.

use crate::error::Report;
use async_nats::jetstream::kv::{self, Entry};
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest a read waits for the view to catch up.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// Pause before watching again after the watch failed.
const REWATCH_AFTER: Duration = Duration::from_secs(1);

/// What a followed bucket's view keeps.
pub(crate) trait View: Default + Send + 'static {
    /// Starts over, the bucket's last write being `last`: forgets what it
    /// held, and says from which revision to watch (None: every key's
    /// latest value, then each change).
    fn reset(&mut self, last: u64) -> Option<u64>;
    /// Takes in one write.
    fn take_in(&mut self, entry: Entry);
}

pub(crate) struct Followed<V> {
    kv: kv::Store,
    tasks: TaskTracker,
    view: Arc<Mutex<V>>,
    /// The highest revision the view has taken in.
    seen: watch::Sender<u64>,
    started: AtomicBool,
    stop: CancellationToken,
}

/// The sequence of the last write to `kv`'s stream (0: none).
async fn last_written(kv: &kv::Store) -> Result<u64, crate::error::BoxError> {
    let mut stream = kv.stream.clone();
    Ok(stream.info().await.map_err(Box::new)?.state.last_sequence)
}

impl<V: View> Followed<V> {
    pub(crate) fn new(kv: kv::Store, tasks: TaskTracker) -> Self {
        Self {
            kv,
            tasks,
            view: Arc::default(),
            seen: watch::Sender::new(0),
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
        }
    }

    /// Ends the watch.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Follows the bucket if it does not yet, and waits until the view has
    /// taken in write `last`; false if it did not in time.
    pub(crate) async fn caught_up(&self, last: u64) -> bool {
        if !self.started.swap(true, Ordering::SeqCst) {
            self.tasks.spawn(follow(
                self.kv.clone(),
                self.view.clone(),
                self.seen.clone(),
                self.stop.clone(),
            ));
        }
        let mut seen = self.seen.subscribe();
        let caught_up = tokio::time::timeout(CATCH_UP_WAIT, seen.wait_for(|s| *s >= last))
            .await
            .is_ok();
        caught_up
    }

    /// The view, locked (never across an await).
    pub(crate) fn view(&self) -> MutexGuard<'_, V> {
        lock(&self.view)
    }
}

fn lock<V>(view: &Mutex<V>) -> MutexGuard<'_, V> {
    view.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps `view` in line with the bucket until `stop`.
async fn follow<V: View>(
    kv: kv::Store,
    view: Arc<Mutex<V>>,
    seen: watch::Sender<u64>,
    stop: CancellationToken,
) {
    loop {
        let watched = tokio::select! {
            () = stop.cancelled() => return,
            watched = async {
                let last = last_written(&kv).await.map_err(|e| Report(&*e).to_string())?;
                let from = lock(&view).reset(last);
                if last == 0 {
                    seen.send_replace(0);
                }
                match from {
                    None => kv.watch_with_history(">").await,
                    Some(revision) => kv.watch_all_from_revision(revision).await,
                }
                .map_err(|e| Report(&e).to_string())
            } => watched,
        };
        match watched {
            Ok(mut entries) => loop {
                let entry = tokio::select! {
                    () = stop.cancelled() => return,
                    entry = entries.next() => entry,
                };
                match entry {
                    Some(Ok(entry)) => {
                        let revision = entry.revision;
                        lock(&view).take_in(entry);
                        seen.send_if_modified(|s| {
                            let newer = revision > *s;
                            if newer {
                                *s = revision;
                            }
                            newer
                        });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(bucket = %kv.name, error = %Report(&e), "a watch failed; watching again");
                        break;
                    }
                    None => break,
                }
            },
            Err(e) => tracing::warn!(bucket = %kv.name, error = %e, "cannot watch the bucket yet"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REWATCH_AFTER) => {}
        }
    }
}
