//! The accept loop: one tracked task per client connection, HTTP/1.1 with
//! header limits, and a graceful shutdown that stops accepting, lets
//! in-flight requests finish for a grace period, then closes what is left.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::forward::Forwarder;
use crate::routes::Router;
use crate::ProxyConfig;

/// hyper refuses a read buffer smaller than this.
const MIN_READ_BUFFER: usize = 8 * 1024;

/// How long to pause after a failed accept (out of file descriptors, say)
/// before trying again, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the proxy on `listener` until `shutdown` is cancelled, then stops accepting and lets in-flight
/// requests finish for up to `config.shutdown_grace`. Every connection task is tracked (no fire-and-forget).
///
/// Connections still open when the grace period ends are closed, and their
/// requests fail. Failing to accept one connection is logged and retried, so
/// today this returns `Ok` once shut down; the `io::Result` leaves room for
/// listener setup that can fail (TLS).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ProxyConfig,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let forwarder = Arc::new(Forwarder::new(router, &config));
    let http = http1_builder(&config);
    let graceful = GracefulShutdown::new();
    let connections = TaskTracker::new();
    let close_now = CancellationToken::new();
    tracing::info!(addr = ?listener.local_addr().ok(), "proxy listening");

    loop {
        let (stream, client) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%client, %error, "could not set TCP_NODELAY");
        }
        let forwarder = Arc::clone(&forwarder);
        let service = service_fn(move |request| {
            let forwarder = Arc::clone(&forwarder);
            async move { Ok::<_, Infallible>(forwarder.handle(request, client).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let close_now = close_now.clone();
        connections.spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%client, %error, "client connection ended with an error");
                    }
                }
                () = close_now.cancelled() => {
                    tracing::debug!(%client, "client connection closed: shutdown grace is over");
                }
            }
        });
    }

    drop(listener);
    connections.close();
    tracing::info!(open = connections.len(), "proxy shutting down");
    let finished = async {
        graceful.shutdown().await;
        connections.wait().await;
    };
    if tokio::time::timeout(config.shutdown_grace, finished)
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            grace = ?config.shutdown_grace,
            "closing connections still busy after the shutdown grace"
        );
        close_now.cancel();
        connections.wait().await;
    }
    tracing::info!("proxy stopped");
    Ok(())
}

/// The HTTP/1.1 settings every client connection gets.
fn http1_builder(config: &ProxyConfig) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.client_header_timeout)
        .max_header_size(config.max_header_bytes)
        .max_buf_size(config.max_header_bytes.max(MIN_READ_BUFFER));
    http
}
