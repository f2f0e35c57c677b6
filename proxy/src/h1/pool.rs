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
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::peer::PeerTls;
use crate::router::Backend;

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
    pub(crate) stream: Stream,
    pub(crate) buf: Buffer,
}

/// The connection itself: plain to an instance, TLS to another node.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP connection underneath.
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls).poll_shutdown(cx),
        }
    }
}

/// The idle connections of one worker.
#[derive(Debug)]
pub(crate) struct UpstreamPool {
    inner: Mutex<Idle>,
    connect_timeout: Duration,
    /// How other nodes' peer listeners are reached (None: they are not).
    peer: Option<PeerTls>,
}

#[derive(Debug)]
struct Idle {
    by_addr: HashMap<SocketAddr, Vec<(Upstream, Instant)>>,
    swept: Instant,
}

impl UpstreamPool {
    /// An empty pool whose new connections may take `connect_timeout`
    /// (the TLS handshake included), reaching other nodes with `peer`.
    pub(crate) fn new(connect_timeout: Duration, peer: Option<PeerTls>) -> Self {
        Self {
            inner: Mutex::new(Idle {
                by_addr: HashMap::new(),
                swept: Instant::now(),
            }),
            connect_timeout,
            peer,
        }
    }

    /// An idle connection to `addr` that is still open, if there is one.
    pub(crate) fn take(&self, addr: SocketAddr) -> Option<Upstream> {
        let mut idle = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let connections = idle.by_addr.get_mut(&addr)?;
        while let Some((upstream, since)) = connections.pop() {
            if since.elapsed() < IDLE_TIMEOUT && is_open(upstream.stream.tcp()) {
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

    /// A connection to `backend` for one exchange: an idle one, else (or
    /// when `fresh_only`) a new one; true with an idle one. A failure to
    /// connect is logged here.
    pub(crate) async fn get(
        &self,
        backend: &Backend,
        fresh_only: bool,
    ) -> io::Result<(Upstream, bool)> {
        if !fresh_only {
            if let Some(upstream) = self.take(backend.addr) {
                return Ok((upstream, true));
            }
        }
        let connected = tokio::time::timeout(self.connect_timeout, self.connect(backend))
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")));
        match connected {
            Ok(upstream) => Ok((upstream, false)),
            Err(error) => {
                let addr = backend.addr;
                match &backend.tls_name {
                    None => tracing::warn!(%addr, %error, "instance did not answer"),
                    Some(name) => {
                        tracing::warn!(%addr, peer = %name, %error, "node proxy did not answer")
                    }
                }
                Err(error)
            }
        }
    }

    /// A new connection to `backend`, with TCP_NODELAY, over TLS when it
    /// has a TLS name.
    async fn connect(&self, backend: &Backend) -> io::Result<Upstream> {
        let tcp = TcpStream::connect(backend.addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match &backend.tls_name {
            None => Stream::Plain(tcp),
            Some(name) => {
                let connector = self.peer.as_ref().map(PeerTls::connector).ok_or_else(|| {
                    io::Error::other("no node certificate: cannot reach other nodes")
                })?;
                let name = ServerName::try_from(name.to_string())
                    .map_err(|_| io::Error::other(format!("{name:?} is not a TLS name")))?;
                Stream::Tls(Box::new(connector.connect(name, tcp).await?))
            }
        };
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
/// Asks the kernel only when the runtime saw it become readable. For a TLS
/// connection this reads the TCP connection underneath: any byte there
/// (a close_notify, say) means it is dropped anyway.
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
