//! Reading a bucket through its stream, in write order. A bucket keeps one
//! message per key (its latest value), in the order they were written, so
//! the newest writes are at the stream's end and the oldest at its start:
//! the jobs listing reads from the end ([`Bucket::newest_first`]) and
//! retention from the start ([`Bucket::oldest_first`]), each only as far
//! as its decision needs, never the whole bucket when it does not.
//!
//! Windows are read with an ordered consumer from a start sequence; how
//! many messages lie beyond that start is known when it is made, so a read
//! never waits for a message that will not come.

use super::{Bucket, StoreError, Stored};
use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
use futures::StreamExt;
use std::time::Duration;

/// One entry as written.
#[derive(Clone, Debug)]
pub struct Written<T> {
    pub key: String,
    /// The value; None for a deletion's marker, or a value that does not
    /// decode (logged).
    pub value: Option<T>,
    /// Its stream sequence (the key's revision).
    pub seq: u64,
    /// When the servers stored it, in ms since the epoch.
    pub written_ms: u64,
}

/// Whether a visit wants more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    More,
    Stop,
}

/// The most messages a window of [`Bucket::newest_first`] holds; the
/// first holds what its caller expects to need, each next one twice the
/// one before.
const MAX_WINDOW: u64 = 4096;
/// Longest wait for the next message of a window the servers said exists.
const MESSAGE_WAIT: Duration = Duration::from_secs(5);

impl<T: Stored> Bucket<T> {
    /// The stream's first and last sequence (0, 0 when it is empty).
    async fn bounds(&self) -> Result<(u64, u64), StoreError> {
        let mut stream = self.kv().stream.clone();
        let info = stream.info().await.map_err(|e| self.stream_error(e))?;
        if info.state.messages == 0 {
            return Ok((0, 0));
        }
        Ok((info.state.first_sequence, info.state.last_sequence))
    }

    fn stream_error<E>(&self, e: E) -> StoreError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        StoreError::Io {
            bucket: self.name().to_string(),
            key: "(stream)".into(),
            source: Box::new(e),
        }
    }

    /// The entries written at sequences `start..end` (`end` None: to the
    /// stream's end), oldest first; `visit` may stop the read early.
    async fn read_from(
        &self,
        start: u64,
        end: Option<u64>,
        mut visit: impl FnMut(Written<T>) -> Next,
    ) -> Result<Next, StoreError> {
        let kv = self.kv();
        let consumer = kv
            .stream
            .create_consumer(OrderedConfig {
                // The stream holds the bucket's subjects only; a filter
                // would make the servers count what is pending subject by
                // subject, which grows with the bucket.
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| self.stream_error(e))?;
        let pending = consumer.cached_info().num_pending;
        if pending == 0 {
            return Ok(Next::More);
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| self.stream_error(e))?;
        for _ in 0..pending {
            let message = match tokio::time::timeout(MESSAGE_WAIT, messages.next()).await {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(e))) => return Err(self.stream_error(e)),
                Ok(None) => break,
                Err(elapsed) => return Err(self.stream_error(elapsed)),
            };
            let (seq, written_ms) = match message.info() {
                Ok(info) => (
                    info.stream_sequence,
                    (info.published.unix_timestamp_nanos() / 1_000_000).max(0) as u64,
                ),
                Err(e) => return Err(self.stream_error(std::io::Error::other(e.to_string()))),
            };
            if end.is_some_and(|end| seq >= end) {
                break;
            }
            let key = message
                .subject
                .strip_prefix(kv.prefix.as_str())
                .unwrap_or_default()
                .to_string();
            let marker = message
                .headers
                .as_ref()
                .and_then(|h| h.get("KV-Operation"))
                .is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
            let value = match marker {
                true => None,
                false => match T::from_bytes(&message.payload) {
                    Ok(value) => Some(value),
                    Err(e) => {
                        tracing::warn!(bucket = %self.name(), %key, error = %crate::error::Report(&e), "skipping a corrupt entry");
                        None
                    }
                },
            };
            let entry = Written {
                key,
                value,
                seq,
                written_ms,
            };
            if visit(entry) == Next::Stop {
                return Ok(Next::Stop);
            }
        }
        Ok(Next::More)
    }

    /// Visits the bucket's entries written before sequence `before` (None:
    /// all), newest write first, until `visit` stops or the oldest is
    /// reached. Reads a window at a time from the end, the first of
    /// `expected` messages (what the caller expects to need).
    pub async fn newest_first(
        &self,
        before: Option<u64>,
        expected: u64,
        mut visit: impl FnMut(Written<T>) -> Next,
    ) -> Result<(), StoreError> {
        let (first, last) = self.bounds().await?;
        if last == 0 {
            return Ok(());
        }
        let mut end = before.unwrap_or(last + 1).min(last + 1);
        let mut window = expected.clamp(1, MAX_WINDOW);
        while end > first {
            let start = end.saturating_sub(window).max(first);
            window = (window * 2).min(MAX_WINDOW);
            let mut window = Vec::new();
            self.read_from(start, Some(end), |entry| {
                window.push(entry);
                Next::More
            })
            .await?;
            for entry in window.into_iter().rev() {
                if visit(entry) == Next::Stop {
                    return Ok(());
                }
            }
            end = start;
        }
        Ok(())
    }

    /// Visits the bucket's entries oldest write first, until `visit` stops
    /// or the newest is reached.
    pub async fn oldest_first(
        &self,
        visit: impl FnMut(Written<T>) -> Next,
    ) -> Result<(), StoreError> {
        let (first, last) = self.bounds().await?;
        if last == 0 {
            return Ok(());
        }
        self.read_from(first, Some(last + 1), visit).await?;
        Ok(())
    }

    /// Visits the entries written after sequence `after`, oldest first.
    pub async fn written_after(
        &self,
        after: u64,
        visit: impl FnMut(Written<T>) -> Next,
    ) -> Result<(), StoreError> {
        let (_, last) = self.bounds().await?;
        if last <= after {
            return Ok(());
        }
        self.read_from(after + 1, Some(last + 1), visit).await?;
        Ok(())
    }

    /// The sequence of the bucket's latest write (0 when it is empty).
    pub async fn last_written(&self) -> Result<u64, StoreError> {
        Ok(self.bounds().await?.1)
    }

    /// When the servers stored the bucket's oldest message (None: empty).
    pub async fn oldest_written_ms(&self) -> Result<Option<u64>, StoreError> {
        let mut stream = self.kv().stream.clone();
        let info = stream.info().await.map_err(|e| self.stream_error(e))?;
        if info.state.messages == 0 {
            return Ok(None);
        }
        let ms = info.state.first_timestamp.unix_timestamp_nanos() / 1_000_000;
        Ok(Some(ms.max(0) as u64))
    }

    /// Removes `key` and every message it left, deletion markers
    /// included, so the bucket holds nothing of it.
    pub async fn erase(&self, key: &str) -> Result<(), StoreError> {
        let kv = self.kv();
        kv.stream
            .purge()
            .filter(format!("{}{key}", kv.prefix))
            .await
            .map(drop)
            .map_err(|e| StoreError::Io {
                bucket: self.name().to_string(),
                key: key.to_string(),
                source: Box::new(e),
            })
    }
}
