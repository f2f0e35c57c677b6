//! A read buffer: bytes read but not yet used, filled from an IO into its
//! spare capacity (never zeroed first), growing from a starting size up to
//! a cap.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The least a buffer may be capped at, and the least it grows by.
pub(crate) const MIN_CAPACITY: usize = 16 * 1024;

/// Bytes read and not yet consumed.
#[derive(Debug)]
pub(crate) struct Buffer {
    bytes: Vec<u8>,
    start: usize,
    initial: usize,
    max: usize,
}

impl Buffer {
    /// An empty buffer of `initial` bytes that grows up to `max` (at least
    /// [`MIN_CAPACITY`]).
    pub(crate) fn new(initial: usize, max: usize) -> Self {
        let max = max.max(MIN_CAPACITY);
        let initial = initial.clamp(1, max);
        Self {
            bytes: Vec::with_capacity(initial),
            start: 0,
            initial,
            max,
        }
    }

    /// Back to the starting size, if it is empty and grew past it.
    pub(crate) fn shrink(&mut self) {
        if self.is_empty() && self.bytes.capacity() > self.initial {
            self.bytes = Vec::with_capacity(self.initial);
        }
    }

    /// The bytes not consumed yet.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.bytes.len()
    }

    /// Whether the unconsumed bytes fill the buffer to its cap.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes.len() - self.start >= self.max
    }

    /// Drops the first `count` unconsumed bytes.
    pub(crate) fn consume(&mut self, count: usize) {
        self.start = (self.start + count).min(self.bytes.len());
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
    }

    /// The unconsumed bytes, taken out (the buffer is left empty).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.drain(..self.start);
        self.start = 0;
        bytes
    }

    /// Reads once from `io` after the unconsumed bytes; Ok(0) at end of
    /// stream. Must not be called when [`Buffer::is_full`].
    pub(crate) async fn fill<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> io::Result<usize> {
        self.make_room()?;
        io.read_buf(&mut self.bytes).await
    }

    /// [`Buffer::fill`] for a caller that is polled rather than awaited.
    pub(crate) fn poll_fill<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
    ) -> Poll<io::Result<usize>> {
        if let Err(error) = self.make_room() {
            return Poll::Ready(Err(error));
        }
        tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut self.bytes)
    }

    /// Makes sure there is spare capacity to read into.
    fn make_room(&mut self) -> io::Result<()> {
        if self.bytes.len() == self.bytes.capacity() {
            if self.start > 0 {
                self.bytes.drain(..self.start);
                self.start = 0;
            }
            if self.bytes.len() == self.bytes.capacity() {
                let room = self
                    .max
                    .saturating_sub(self.bytes.len())
                    .min(self.bytes.len().max(MIN_CAPACITY));
                if room == 0 {
                    return Err(io::Error::other("read buffer full"));
                }
                self.bytes.reserve_exact(room);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "buffer_tests.rs"]
mod tests;
