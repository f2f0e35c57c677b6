//! The accept loop: one tracked task per client connection, and a graceful
//! shutdown that stops accepting, lets in-flight requests (and open
//! WebSockets) finish for a grace period, then closes what is left and waits
//! for every task the proxy started, hyper's included.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::certs::Certificates;
use crate::connection::{http_builder, Listener};
use crate::exec::TrackedExecutor;
use crate::forward::Upstream;
use crate::h1::{FastPath, UpstreamPool};
use crate::handler::Handler;
use crate::peer::PeerTls;
use crate::router::Router;
use crate::side::Side;
use crate::{tls, ProxyConfig};

/// How long to pause after a failed accept (out of file descriptors, say)
/// before trying again, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long hyper's own tasks (HTTP/2 streams, upstream connections) may take
/// to end once every client connection is closed; they end as soon as they
/// notice, so this is only a bound.
const BACKGROUND_WAIT: Duration = Duration::from_secs(5);

/// Serves plain HTTP (HTTP/1.1, and HTTP/2 with prior knowledge) on
/// `listener` until `shutdown` is cancelled, then stops accepting and lets
/// in-flight requests finish for up to `config.shutdown_grace`. Every
/// connection task is tracked (no fire-and-forget).
///
/// This listener also answers ACME HTTP-01 challenges and redirects the apps
/// that ask for it to HTTPS. Connections still open when the grace period
/// ends are closed, and their requests fail. Failing to accept one connection
/// is logged and retried, so this returns `Ok` once shut down.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ProxyConfig,
    shutdown: CancellationToken,
) -> io::Result<()> {
    run(listener, router, config, Side::Plain, None, shutdown).await
}

/// Serves HTTPS on `listener` like [`serve`], with the certificate of the
/// name each client asks for (SNI) from `certs`, and HTTP/2 or HTTP/1.1 as
/// negotiated by ALPN. A handshake that fails (no certificate for the name,
/// or none within `config.tls_handshake_timeout`) closes that connection only.
///
/// Errors only if the TLS settings cannot be built.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    config: ProxyConfig,
    certs: Certificates,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let acceptor = tls::acceptor(certs).map_err(io::Error::other)?;
    run(
        listener,
        router,
        config,
        Side::Tls,
        Some(acceptor),
        shutdown,
    )
    .await
}

/// Serves other node proxies on `listener` like [`serve`]: mutual TLS with
/// `config.peer` (a client must present a certificate of the cluster's CA),
/// HTTP/1.1 only, requests served by local instances only and their
/// `X-Forwarded-*` taken as the forwarding node wrote them. No ACME
/// answers, no redirects.
///
/// Without `config.peer` it serves plain HTTP, which only measurements
/// should: anyone who reaches it is believed about who the client was.
pub async fn serve_peer(
    listener: TcpListener,
    router: Router,
    config: ProxyConfig,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let acceptor = config.peer.as_ref().map(PeerTls::acceptor);
    if acceptor.is_none() {
        tracing::warn!("node-to-node listener without TLS: for measurements only");
    }
    let side = Side::Peer {
        tls: acceptor.is_some(),
    };
    run(listener, router, config, side, acceptor, shutdown).await
}

async fn run(
    listener: TcpListener,
    router: Router,
    config: ProxyConfig,
    side: Side,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    // Client connections and upgrade tunnels: shutdown waits for them (up to the grace).
    let connections = TaskTracker::new();
    // hyper's own tasks: they end once the connections they serve are gone.
    let background = TaskTracker::new();
    let close_now = CancellationToken::new();
    let executor = TrackedExecutor::new(background.clone());
    // One pool of upstream connections for both paths.
    let pool = Arc::new(UpstreamPool::new(
        config.upstream_connect_timeout,
        config.peer.clone(),
    ));
    let handler = Handler::new(
        router.clone(),
        Upstream::new(&config, Arc::clone(&pool), executor.clone()),
        Arc::clone(&pool),
        &config,
        side,
        connections.clone(),
        close_now.clone(),
    );
    let scheme = match side {
        Side::Plain => "http",
        Side::Tls => "https",
        Side::Peer { .. } => "peer",
    };
    let shared = Arc::new(Listener {
        fast: FastPath::new(router.clone(), pool, &config, side, shutdown.clone()),
        handler: Arc::new(handler),
        builder: http_builder(&config, executor),
        tls,
        handshake_timeout: config.tls_handshake_timeout,
        first_bytes_timeout: config.client_header_timeout,
        metrics: router.metrics().clone(),
        close_now: close_now.clone(),
        peer: match side {
            Side::Peer { .. } => config.peer.clone(),
            _ => None,
        },
    });
    let graceful = GracefulShutdown::new();
    tracing::info!(addr = ?listener.local_addr().ok(), scheme, "proxy listening");

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
        connections.spawn(Arc::clone(&shared).serve(stream, client, graceful.watcher()));
    }

    drop(listener);
    connections.close();
    tracing::info!(scheme, open = connections.len(), "proxy shutting down");
    let finished = async {
        graceful.shutdown().await;
        connections.wait().await;
    };
    if tokio::time::timeout(config.shutdown_grace, finished)
        .await
        .is_err()
    {
        tracing::warn!(
            scheme,
            open = connections.len(),
            grace = ?config.shutdown_grace,
            "closing connections still busy after the shutdown grace"
        );
        close_now.cancel();
        connections.wait().await;
    }
    // Dropping the upstream pool ends its idle connections' tasks.
    drop(shared);
    background.close();
    if tokio::time::timeout(BACKGROUND_WAIT, background.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            scheme,
            left = background.len(),
            "proxy tasks still running after shutdown"
        );
    }
    tracing::info!(scheme, "proxy stopped");
    Ok(())
}
