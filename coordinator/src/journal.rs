//! An append-only record a coordinator writes to a stream without making
//! anyone wait: the audit log and the cluster's events. [`Journal::write`]
//! only queues; a task of its own publishes the entries in order, each
//! with an id the stream uses to drop a copy, so an entry whose
//! acknowledgement was lost is sent again without being written twice. A
//! burst beyond the queue is dropped and counted rather than slow the
//! caller down; at shutdown what is queued is written, then the task ends.

use async_nats::jetstream;
use reef_proto::{encode, Message, Report};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Entries waiting for the writer.
const QUEUE: usize = 4096;
/// Tries per entry before it is given up (with a warning).
const TRIES: u32 = 3;
/// How long one publish may wait for the stream's acknowledgement.
const ACK_WAIT: Duration = Duration::from_secs(5);

/// Queues entries for one stream; cheap to clone.
#[derive(Clone)]
pub(crate) struct Journal {
    /// What it records, for its log lines.
    what: &'static str,
    queue: mpsc::Sender<(String, bytes::Bytes)>,
    dropped: Arc<AtomicU64>,
    writer: TaskTracker,
}

impl Journal {
    /// Starts the writer of `what` (`audit entries`, `events`), which
    /// publishes with `js` until `shutdown`, then what is queued, and stops.
    pub(crate) fn start(
        what: &'static str,
        js: jetstream::Context,
        shutdown: CancellationToken,
    ) -> Self {
        let (queue, entries) = mpsc::channel(QUEUE);
        let writer = TaskTracker::new();
        writer.spawn(write(what, js, entries, shutdown));
        writer.close();
        Self {
            what,
            queue,
            dropped: Arc::default(),
            writer,
        }
    }

    /// Queues `entry` for `subject`.
    pub(crate) fn write<T: Message>(&self, subject: String, entry: &T) {
        let bytes = match encode(entry) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(what = self.what, error = %Report(&e), "an entry could not be encoded");
                return;
            }
        };
        match self.queue.try_send((subject, bytes)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Once per power of two: a flood is seen, not echoed.
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        what = self.what,
                        dropped,
                        "entries dropped: the stream is not keeping up"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed((subject, _))) => {
                tracing::debug!(what = self.what, %subject, "an entry after shutdown is not written");
            }
        }
    }

    /// The count of entries dropped because the writer fell behind.
    pub(crate) fn dropped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }

    /// Waits for the writer to write what is queued and stop; the
    /// shutdown token given to [`Journal::start`] must be cancelled first.
    pub(crate) async fn close(&self) {
        self.writer.wait().await;
    }
}

/// Publishes entries in order until shutdown, then what is left.
async fn write(
    what: &'static str,
    js: jetstream::Context,
    mut entries: mpsc::Receiver<(String, bytes::Bytes)>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            entry = entries.recv() => match entry {
                Some((subject, bytes)) => publish(what, &js, subject, bytes).await,
                None => return,
            },
            () = shutdown.cancelled() => break,
        }
    }
    entries.close();
    while let Some((subject, bytes)) = entries.recv().await {
        publish(what, &js, subject, bytes).await;
    }
}

async fn publish(what: &str, js: &jetstream::Context, subject: String, bytes: bytes::Bytes) {
    let id = uuid::Uuid::now_v7().to_string();
    let mut last = String::new();
    for _ in 0..TRIES {
        let sent = async {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            js.publish_with_headers(subject.clone(), headers, bytes.clone())
                .await?
                .await?;
            Ok::<(), async_nats::Error>(())
        };
        match tokio::time::timeout(ACK_WAIT, sent).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => last = Report(&*e).to_string(),
            Err(_) => last = "no acknowledgement in time".into(),
        }
    }
    tracing::warn!(what, %subject, error = %last, "an entry could not be written");
}
