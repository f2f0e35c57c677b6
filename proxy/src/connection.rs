//! One client connection: the TLS handshake (HTTPS listener), then the fast
//! path for HTTP/1.1 (`h1`) until a request needs more, then hyper for the
//! rest of the connection: HTTP/1.1 with upgrades, or HTTP/2 (h2c with prior
//! knowledge on the plain listener, ALPN on TLS, where it starts with hyper).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::deadline::FirstBytesDeadline;
use crate::exec::TrackedExecutor;
use crate::h1::{self, FastPath, Rewind, Served};
use crate::handler::Handler;
use crate::metrics::Metrics;
use crate::ProxyConfig;

/// hyper refuses a read buffer smaller than this.
const MIN_READ_BUFFER: usize = 8 * 1024;

/// What every connection of one listener shares.
pub(crate) struct Listener {
    pub(crate) fast: FastPath,
    pub(crate) handler: Arc<Handler>,
    pub(crate) builder: auto::Builder<TrackedExecutor>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) first_bytes_timeout: Duration,
    pub(crate) metrics: Metrics,
    /// Cancelled when the shutdown grace is over.
    pub(crate) close_now: CancellationToken,
    /// On the peer listener: where tunnels go ([`crate::peer::TUNNEL_ALPN`]).
    pub(crate) peer: Option<crate::PeerTls>,
}

impl Listener {
    /// Serves one accepted connection until it ends or `close_now` is cancelled.
    pub(crate) async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        client: SocketAddr,
        watcher: Watcher,
    ) {
        let _open = self.metrics.connection_opened();
        tokio::select! {
            () = self.handshake_and_serve(stream, client, watcher) => {}
            () = self.close_now.cancelled() => {
                tracing::debug!(%client, "client connection closed: shutdown grace is over");
            }
        }
    }

    async fn handshake_and_serve(&self, stream: TcpStream, client: SocketAddr, watcher: Watcher) {
        let Some(acceptor) = &self.tls else {
            return self.serve_http(stream, client, watcher).await;
        };
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream))
                if stream.get_ref().1.alpn_protocol() == Some(crate::peer::TUNNEL_ALPN) =>
            {
                // Only the peer listener offers it, to nodes of the cluster.
                match self.peer.as_ref().and_then(crate::PeerTls::tunnel_handler) {
                    Some(handler) => handler.serve(stream, client).await,
                    None => tracing::debug!(%client, "a tunnel, and nothing here takes them"),
                }
            }
            Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                self.serve_hyper(Rewind::new(Vec::new(), stream), client, watcher)
                    .await;
            }
            Ok(Ok(stream)) => self.serve_http(stream, client, watcher).await,
            Ok(Err(error)) => {
                // Unknown names, scanners, clients that do not trust the
                // certificate: routine, and only this connection is affected.
                self.metrics.handshake_failed();
                tracing::debug!(%client, %error, "TLS handshake failed");
            }
            Err(_) => {
                self.metrics.handshake_failed();
                tracing::debug!(%client, timeout = ?self.handshake_timeout, "TLS handshake timed out");
            }
        }
    }

    /// The fast path, then hyper if a request needs it.
    async fn serve_http<I>(&self, io: I, client: SocketAddr, watcher: Watcher)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match h1::serve(&self.fast, io, client).await {
            Served::Closed => {}
            Served::Fallback(io) => self.serve_hyper(io, client, watcher).await,
        }
    }

    async fn serve_hyper<I>(&self, io: Rewind<I>, client: SocketAddr, watcher: Watcher)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(FirstBytesDeadline::new(io, self.first_bytes_timeout));
        let handler = Arc::clone(&self.handler);
        let service = service_fn(move |request| {
            let handler = Arc::clone(&handler);
            async move { Ok::<_, Infallible>(handler.handle(request, client).await) }
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        if let Err(error) = watcher.watch(connection).await {
            tracing::debug!(%client, %error, "client connection ended with an error");
        }
    }
}

/// The HTTP/1.1 and HTTP/2 settings every client connection gets.
pub(crate) fn http_builder(
    config: &ProxyConfig,
    executor: TrackedExecutor,
) -> auto::Builder<TrackedExecutor> {
    let mut builder = auto::Builder::new(executor);
    // A head larger than the read buffer is refused with 431.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.client_header_timeout)
        .max_buf_size(config.max_header_bytes.max(MIN_READ_BUFFER));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(config.http2_keep_alive)
        .keep_alive_timeout(config.http2_keep_alive);
    builder
}
