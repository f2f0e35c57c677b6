//! Idle upstream connections, kept per backend address for reuse
//! (keep-alive), newest first: the fast path's, and the full path's for
//! requests without a body (`direct`). A connection is taken for one exchange
//! and comes back after it, so idle clients hold none and an instance sees
//! about as many connections as requests run at once. Each proxy worker has
//! its own pool, so its lock is never contended.
//!
//! A connection comes back only after a complete exchange on it; one that is
//! taken is checked first, and one the other side closed meanwhile is
//! dropped. Connections idle longer than [`IDLE_TIMEOUT`] are closed.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::buffer::{Buffer, MIN_CAPACITY};
use super::MAX_RESPONSE_HEAD;

/// How long an unused upstream connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Most idle connections kept per backend address.
const MAX_IDLE_PER_BACKEND: usize = 128;

/// How often a put also closes every expired connection.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A connection to an instance (or another node's proxy), with the buffer
/// its responses are read into: it travels with the connection, so a client
/// connection holds neither while it waits for its next request.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) stream: TcpStream,
    pub(crate) buf: Buffer,
}

/// The idle connections of one worker.
#[derive(Debug)]
pub(crate) struct UpstreamPool {
    inner: Mutex<Idle>,
    connect_timeout: Duration,
}

#[derive(Debug)]
struct Idle {
    by_addr: HashMap<SocketAddr, Vec<(Upstream, Instant)>>,
    swept: Instant,
}

impl UpstreamPool {
    /// An empty pool whose new connections may take `connect_timeout`.
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        Self {
            inner: Mutex::new(Idle {
                by_addr: HashMap::new(),
                swept: Instant::now(),
            }),
            connect_timeout,
        }
    }

    /// An idle connection to `addr` that is still open, if there is one.
    pub(crate) fn take(&self, addr: SocketAddr) -> Option<Upstream> {
        let mut idle = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let connections = idle.by_addr.get_mut(&addr)?;
        while let Some((upstream, since)) = connections.pop() {
            if since.elapsed() < IDLE_TIMEOUT && is_open(&upstream.stream) {
                return Some(upstream);
            }
        }
        None
    }

    /// Keeps `upstream`, which just finished a complete exchange with
    /// `addr` and has nothing left in its buffer.
    pub(crate) fn put(&self, addr: SocketAddr, upstream: Upstream) {
        let now = Instant::now();
        let mut idle = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if now.duration_since(idle.swept) >= SWEEP_EVERY {
            idle.swept = now;
            idle.by_addr.retain(|_, connections| {
                connections.retain(|(_, since)| now.duration_since(*since) < IDLE_TIMEOUT);
                !connections.is_empty()
            });
        }
        let connections = idle.by_addr.entry(addr).or_default();
        if connections.len() < MAX_IDLE_PER_BACKEND {
            connections.push((upstream, now));
        }
    }

    /// A connection to `addr` for one exchange: an idle one, else (or when
    /// `fresh_only`) a new one; true with an idle one. A failure to connect
    /// is logged here.
    pub(crate) async fn get(
        &self,
        addr: SocketAddr,
        fresh_only: bool,
    ) -> io::Result<(Upstream, bool)> {
        if !fresh_only {
            if let Some(upstream) = self.take(addr) {
                return Ok((upstream, true));
            }
        }
        match self.connect(addr).await {
            Ok(upstream) => Ok((upstream, false)),
            Err(error) => {
                tracing::warn!(%addr, %error, "instance did not answer");
                Err(error)
            }
        }
    }

    /// A new connection to `addr`, with TCP_NODELAY.
    pub(crate) async fn connect(&self, addr: SocketAddr) -> io::Result<Upstream> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Upstream {
            stream,
            buf: Buffer::new(MIN_CAPACITY, MAX_RESPONSE_HEAD),
        })
    }

    /// Idle connections kept now.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        let idle = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        idle.by_addr.values().map(Vec::len).sum()
    }
}

/// Whether an idle connection is still usable: nothing to read on it (an
/// idle upstream that sends something, even its closing, is done with it).
/// Asks the kernel only when the runtime saw it become readable.
pub(crate) fn is_open(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => matches!(
            stream.try_read(&mut [0; 1]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock
        ),
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
