//! Log shipping: a process's stdout and stderr, read by one task in the
//! order they arrive, cut into pieces numbered by one sequence and sent in
//! batches ([`reef_proto::log_batch`]) to the process's log subject. A batch
//! goes out when it is full or [`FLUSH_AFTER`] after its first piece, so a
//! chatty process is not held up by a message per line and a quiet one is
//! still seen live. Publish acks are awaited in a bounded window, and the
//! line counts returned are what readers can expect. Stdout's bytes are
//! hashed as they are read, so a job's result can name its stdout by digest.

mod batcher;

use async_nats::jetstream::{self, context::PublishAckFuture};
use batcher::{Batcher, Ready};
use reef_proto::subjects::Output;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest a piece waits in a batch before the batch is sent.
pub const FLUSH_AFTER: Duration = Duration::from_millis(25);
/// Most batches awaiting their publish ack.
const ACK_WINDOW: usize = 16;
/// How much one read from a pipe takes at most.
const READ_BYTES: usize = 64 * 1024;
/// After giving up on a pipe, how long the acks of what was read may take.
const ACK_GRACE: Duration = Duration::from_secs(5);

/// What the shipper of a process did, once it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Lines shipped on (stdout, stderr).
    pub lines: (u64, u64),
    /// The digest of all of stdout; None if it was not read to its end.
    pub stdout_sha256: Option<[u8; 32]>,
}

/// The shipper of one process's output.
pub struct Shippers {
    task: JoinSet<Drained>,
    give_up: CancellationToken,
}

/// Ships a child's stdout and stderr to `subject` from one task, which
/// ends at the end of both pipes.
pub fn ship_output(
    js: &jetstream::Context,
    child: &mut tokio::process::Child,
    subject: String,
) -> Shippers {
    let give_up = CancellationToken::new();
    let mut task = JoinSet::new();
    let pipes = (child.stdout.take(), child.stderr.take());
    let shipper = Shipper {
        js: js.clone(),
        subject,
        pending: VecDeque::new(),
        shipped: (0, 0),
    };
    task.spawn(shipper.run(pipes.0, pipes.1, give_up.clone()));
    Shippers { task, give_up }
}

/// Waits for the shipper to reach the end of both pipes, up to `deadline`
/// (a process that escaped its group may hold a pipe open); then has it send
/// what it read and stop.
pub async fn finish(mut shippers: Shippers, deadline: Duration) -> Drained {
    if let Ok(drained) = tokio::time::timeout(deadline, shippers.task.join_next()).await {
        return drained.and_then(Result::ok).unwrap_or_default();
    }
    tracing::warn!("process output still open after its process group ended; abandoning it");
    shippers.give_up.cancel();
    match tokio::time::timeout(ACK_GRACE, shippers.task.join_next()).await {
        Ok(drained) => drained.and_then(Result::ok).unwrap_or_default(),
        Err(_) => {
            shippers.task.abort_all();
            Drained::default()
        }
    }
}

struct Shipper {
    js: jetstream::Context,
    subject: String,
    /// Sent batches and the lines each completes.
    pending: VecDeque<(PublishAckFuture, (u64, u64))>,
    shipped: (u64, u64),
}

impl Shipper {
    async fn run(
        mut self,
        mut stdout: Option<impl AsyncRead + Unpin>,
        mut stderr: Option<impl AsyncRead + Unpin>,
        give_up: CancellationToken,
    ) -> Drained {
        let mut batcher = Batcher::new(uuid::Uuid::now_v7().as_u64_pair().1);
        let (mut out_buf, mut err_buf) = (vec![0; READ_BYTES], vec![0; READ_BYTES]);
        let mut hasher = Sha256::new();
        let mut stdout_read = false;
        let mut flush_at: Option<Instant> = None;
        while stdout.is_some() || stderr.is_some() {
            tokio::select! {
                // When both pipes have something, stdout's is taken first:
                // a process that writes a line to each at once wrote
                // stdout's first more often than not.
                biased;
                _ = give_up.cancelled() => break,
                read = read_some(&mut stdout, &mut out_buf) => match read {
                    Ok(0) | Err(_) => {
                        stdout_read = matches!(read, Ok(0));
                        stdout = None;
                        batcher.end(Output::Stdout);
                    }
                    Ok(n) => {
                        hasher.update(&out_buf[..n]);
                        batcher.take(Output::Stdout, &out_buf[..n]);
                    }
                },
                read = read_some(&mut stderr, &mut err_buf) => match read {
                    Ok(0) | Err(_) => {
                        stderr = None;
                        batcher.end(Output::Stderr);
                    }
                    Ok(n) => batcher.take(Output::Stderr, &err_buf[..n]),
                },
                _ = sleep_until(flush_at) => {
                    batcher.flush_open_lines();
                    flush_at = None;
                    self.send(batcher.take_batch()).await;
                }
            }
            if batcher.is_full() {
                flush_at = None;
                self.send(batcher.take_batch()).await;
            } else if flush_at.is_none() && !batcher.is_empty() {
                flush_at = Some(Instant::now() + FLUSH_AFTER);
            }
        }
        batcher.flush_open_lines();
        self.send(batcher.take_batch()).await;
        while let Some(ack) = self.pending.pop_front() {
            self.settle(ack).await;
        }
        Drained {
            lines: self.shipped,
            stdout_sha256: stdout_read.then(|| hasher.finalize().into()),
        }
    }

    async fn send(&mut self, batch: Option<Ready>) {
        let Some(batch) = batch else { return };
        if self.pending.len() >= ACK_WINDOW {
            if let Some(ack) = self.pending.pop_front() {
                self.settle(ack).await;
            }
        }
        match self
            .js
            .publish(self.subject.clone(), batch.payload.into())
            .await
        {
            Ok(ack) => self.pending.push_back((ack, batch.lines)),
            Err(e) => tracing::debug!(error = %e, lines = ?batch.lines, "log batch not published"),
        }
    }

    async fn settle(&mut self, (ack, lines): (PublishAckFuture, (u64, u64))) {
        match ack.await {
            Ok(_) => {
                self.shipped.0 += lines.0;
                self.shipped.1 += lines.1;
            }
            Err(e) => tracing::debug!(error = %e, ?lines, "log batch not acknowledged"),
        }
    }
}

/// Reads what `pipe` has; never ready once the pipe is gone.
async fn read_some(
    pipe: &mut Option<impl AsyncRead + Unpin>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
