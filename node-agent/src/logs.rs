//! Log shipping: a job's stdout and stderr, split into lines (long lines cut
//! at [`MAX_LINE_BYTES`]), each published to the logs stream. Publish acks are
//! awaited in a bounded window so a chatty job cannot pile up unbounded
//! pending acks, and the line count returned is what readers can expect.
//! Each stream's bytes are hashed as they are read, so a job's result can
//! name its stdout by digest.

use async_nats::jetstream::{self, context::PublishAckFuture};
use reef_proto::subjects::Output;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinSet;

/// What one stream's shipper did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shipped {
    pub lines: u64,
    pub dropped: u64,
    /// SHA-256 of every byte read, whether shipped or not.
    pub sha256: [u8; 32],
}

/// Shippers of one process's output.
pub type Shippers = JoinSet<(Output, Shipped)>;

/// What the shippers of a process did, once they stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Lines shipped on (stdout, stderr).
    pub lines: (u64, u64),
    /// The digest of all of stdout; None if it was not read to its end.
    pub stdout_sha256: Option<[u8; 32]>,
}

/// Ships a child's stdout and stderr, each from its own task in the
/// returned set, to the subjects `subject` names. Each task ends at the
/// pipe's end and yields its stream and what it shipped.
pub fn ship_output(
    js: &jetstream::Context,
    child: &mut tokio::process::Child,
    subject: impl Fn(Output) -> String,
) -> Shippers {
    let mut shippers = JoinSet::new();
    if let Some(pipe) = child.stdout.take() {
        let (js, subject) = (js.clone(), subject(Output::Stdout));
        shippers.spawn(async move { (Output::Stdout, ship(js, subject, pipe).await) });
    }
    if let Some(pipe) = child.stderr.take() {
        let (js, subject) = (js.clone(), subject(Output::Stderr));
        shippers.spawn(async move { (Output::Stderr, ship(js, subject, pipe).await) });
    }
    shippers
}

/// Waits for shippers to reach the end of their pipes, up to `deadline`
/// (a process that escaped its group may hold a pipe open); then gives up on
/// the rest.
pub async fn finish(mut shippers: Shippers, deadline: Duration) -> Drained {
    let mut out = Drained::default();
    let drained = tokio::time::timeout(deadline, async {
        while let Some(result) = shippers.join_next().await {
            if let Ok((output, shipped)) = result {
                match output {
                    Output::Stdout => {
                        out.lines.0 = shipped.lines;
                        out.stdout_sha256 = Some(shipped.sha256);
                    }
                    Output::Stderr => out.lines.1 = shipped.lines,
                }
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("process output still open after its process group ended; abandoning it");
        shippers.abort_all();
    }
    out
}

/// Longest line shipped as one message; longer lines are split.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most publish acks outstanding per output stream.
const ACK_WINDOW: usize = 256;

/// Ships every line of `reader` to `subject`.
pub async fn ship(
    js: jetstream::Context,
    subject: String,
    reader: impl AsyncRead + Unpin,
) -> Shipped {
    let mut shipper = Shipper {
        js,
        subject,
        pending: VecDeque::new(),
        shipped: 0,
        dropped: 0,
    };
    let mut lines = LineSplitter::new(reader);
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => shipper.send(line).await,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(subject = %shipper.subject, error = %e, "reading job output failed");
                break;
            }
        }
    }
    while let Some(ack) = shipper.pending.pop_front() {
        shipper.settle(ack).await;
    }
    Shipped {
        lines: shipper.shipped,
        dropped: shipper.dropped,
        sha256: lines.digest(),
    }
}

struct Shipper {
    js: jetstream::Context,
    subject: String,
    pending: VecDeque<PublishAckFuture>,
    shipped: u64,
    dropped: u64,
}

impl Shipper {
    async fn send(&mut self, line: Vec<u8>) {
        if self.pending.len() >= ACK_WINDOW {
            if let Some(ack) = self.pending.pop_front() {
                self.settle(ack).await;
            }
        }
        match self.js.publish(self.subject.clone(), line.into()).await {
            Ok(ack) => self.pending.push_back(ack),
            Err(e) => {
                self.dropped += 1;
                tracing::debug!(error = %e, "log line not published");
            }
        }
    }

    async fn settle(&mut self, ack: PublishAckFuture) {
        match ack.await {
            Ok(_) => self.shipped += 1,
            Err(e) => {
                self.dropped += 1;
                tracing::debug!(error = %e, "log line not acknowledged");
            }
        }
    }
}

/// Splits a byte stream into lines without the trailing newline, never
/// holding more than [`MAX_LINE_BYTES`] of one line, and hashes every byte.
pub struct LineSplitter<R> {
    reader: BufReader<R>,
    line: Vec<u8>,
    hasher: Sha256,
}

impl<R: AsyncRead + Unpin> LineSplitter<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader: BufReader::with_capacity(64 * 1024, reader),
            line: Vec::new(),
            hasher: Sha256::new(),
        }
    }

    /// SHA-256 of the bytes read so far.
    pub fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }

    pub async fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                return Ok((!self.line.is_empty()).then(|| std::mem::take(&mut self.line)));
            }
            let room = MAX_LINE_BYTES - self.line.len();
            let (consumed, complete) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) if i <= room => {
                    self.line.extend_from_slice(&buf[..i]);
                    (i + 1, true)
                }
                _ => {
                    let n = buf.len().min(room);
                    self.line.extend_from_slice(&buf[..n]);
                    (n, self.line.len() >= MAX_LINE_BYTES)
                }
            };
            self.hasher.update(&buf[..consumed]);
            self.reader.consume(consumed);
            if complete {
                return Ok(Some(std::mem::take(&mut self.line)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn split(input: &[u8]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::new(input);
        let mut out = Vec::new();
        while let Some(line) = s.next_line().await.expect("read") {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_final_partial_one() {
        assert_eq!(
            split(b"a\nbb\n\nc").await,
            vec![b"a".to_vec(), b"bb".to_vec(), vec![], b"c".to_vec()]
        );
        assert!(split(b"").await.is_empty());
    }

    #[tokio::test]
    async fn the_digest_covers_every_byte_read() {
        let input = b"a\nbb\n\nc".repeat(10_000);
        let mut s = LineSplitter::new(&input[..]);
        while s.next_line().await.expect("read").is_some() {}
        let expected: [u8; 32] = Sha256::digest(&input).into();
        assert_eq!(s.digest(), expected);
    }

    #[tokio::test]
    async fn long_lines_are_cut() {
        let mut input = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        input.push(b'\n');
        let lines = split(&input).await;
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(lines[2].len(), 10);
    }
}
