//! Following a KV bucket: every key's current value first (delete markers
//! included, so removals made while the watch was down are seen), then each
//! change, handed to a [`Follower`]. The bucket is opened once a coordinator
//! has created it; a watch that fails is opened again after a doubling delay,
//! with its history, until shutdown.

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The first wait after a failure; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(2);
/// How long a bucket may be missing before it is worth a warning: at start
/// the coordinator that creates it may come up a moment after the agent.
const WARN_AFTER: Duration = Duration::from_secs(10);
/// How often [`Follower::tick`] runs.
const TICK: Duration = Duration::from_secs(30);

/// What happened to one key.
pub(crate) enum Change<'a> {
    Put { revision: u64, value: &'a [u8] },
    Removed,
}

/// Something that keeps state in step with a bucket.
pub(crate) trait Follower {
    /// Applies a key's new value or its removal.
    fn apply(&mut self, key: &str, change: Change<'_>);

    /// Runs every [`TICK`], for state that expires by itself.
    fn tick(&mut self) {}
}

/// Follows `bucket` until `shutdown`.
pub(crate) async fn follow(
    js: jetstream::Context,
    bucket: &'static str,
    mut follower: impl Follower,
    shutdown: CancellationToken,
) {
    let mut delay = FIRST_RETRY;
    let mut warned = false;
    // When the current run of failures to open the bucket began.
    let mut missing_since: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let opened = tokio::select! {
            () = shutdown.cancelled() => return,
            opened = open(&js, bucket) => opened,
        };
        match opened {
            Ok(mut watch) => {
                tracing::debug!(%bucket, "following");
                warned = false;
                missing_since = None;
                delay = FIRST_RETRY;
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        _ = tick.tick() => follower.tick(),
                        entry = watch.next() => match entry {
                            Some(Ok(entry)) => apply(&mut follower, &entry),
                            Some(Err(e)) => {
                                tracing::warn!(%bucket, error = %e, "bucket watch failed; watching again");
                                break;
                            }
                            None => {
                                tracing::warn!(%bucket, "bucket watch ended; watching again");
                                break;
                            }
                        },
                    }
                }
            }
            Err(e) => {
                let since = *missing_since.get_or_insert_with(tokio::time::Instant::now);
                if !warned && since.elapsed() >= WARN_AFTER {
                    tracing::warn!(%bucket, error = %e, "cannot watch the bucket yet (is a coordinator running?); retrying");
                    warned = true;
                } else {
                    tracing::debug!(%bucket, error = %e, "cannot watch the bucket yet");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => follower.tick(),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(MAX_RETRY);
    }
}

async fn open(js: &jetstream::Context, bucket: &str) -> Result<kv::Watch, async_nats::Error> {
    let store = js.get_key_value(bucket).await?;
    Ok(store.watch_with_history(">").await?)
}

fn apply(follower: &mut impl Follower, entry: &kv::Entry) {
    let change = match entry.operation {
        kv::Operation::Put => Change::Put {
            revision: entry.revision,
            value: &entry.value,
        },
        kv::Operation::Delete | kv::Operation::Purge => Change::Removed,
    };
    follower.apply(&entry.key, change);
}
