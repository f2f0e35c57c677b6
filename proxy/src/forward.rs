//! The upstream side of the full path: the rewrite that turns a client's
//! request into the one sent upstream, and hyper's pooled HTTP/1.1 client
//! for requests with a body and upgrades (requests without one go through
//! `h1::direct`). Another node's peer listener is reached over mutual TLS:
//! such a request gets a new connection of its own from the upstream pool,
//! which hyper speaks HTTP/1.1 over for that one exchange.
//!
//! Bodies are never collected: the client's request body is handed to the
//! upstream connection as it arrives, and the upstream's response body is
//! handed back to the client connection frame by frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::rt::Executor;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::error::ProxyError;
use crate::exec::TrackedExecutor;
use crate::h1::UpstreamPool;
use crate::headers::{set_forwarded, strip_hop_by_hop};
use crate::host::RequestedHost;
use crate::limits::LimitedBody;
use crate::router::Backend;
use crate::side::Side;
use crate::ProxyConfig;

/// What the upstream client sends: the client's body, with its limits.
pub(crate) type UpstreamBody = LimitedBody<Incoming>;

/// How long an unused upstream connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The pooled client every request goes upstream through.
#[derive(Debug)]
pub(crate) struct Upstream {
    client: Client<HttpConnector, UpstreamBody>,
    /// Where connections to other nodes come from.
    pool: Arc<UpstreamPool>,
    /// Runs the connections to other nodes, tracked.
    executor: TrackedExecutor,
    timeout: Duration,
}

/// Where and how one request goes upstream.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    pub(crate) backend: &'a Backend,
    pub(crate) host: &'a RequestedHost,
    pub(crate) client: SocketAddr,
    /// The listener the request came in on: whose `X-Forwarded-*` count.
    pub(crate) side: Side,
}

impl Upstream {
    /// A client with its own pool for instances, other nodes reached
    /// through `pool`, its connection tasks tracked by `executor`.
    pub(crate) fn new(
        config: &ProxyConfig,
        pool: Arc<UpstreamPool>,
        executor: TrackedExecutor,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.upstream_connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(executor.clone())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Self {
            client,
            pool,
            executor,
            timeout: config.upstream_timeout,
        }
    }

    /// Sends `request` to `backend` of `app` and waits for its response
    /// headers, up to the upstream timeout.
    pub(crate) async fn send(
        &self,
        request: Request<UpstreamBody>,
        app: &Arc<str>,
        backend: &Backend,
    ) -> Result<Response<Incoming>, ProxyError> {
        let exchange = async {
            match backend.tls_name {
                None => self
                    .client
                    .request(request)
                    .await
                    .map_err(|error| error_chain(&error)),
                Some(_) => self.send_to_peer(request, backend).await,
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                tracing::warn!(
                    %app,
                    backend = %backend.id,
                    %error,
                    "instance did not answer"
                );
                Err(ProxyError::Unreachable {
                    app: Arc::clone(app),
                })
            }
            Err(_) => {
                tracing::warn!(
                    %app,
                    backend = %backend.id,
                    timeout = ?self.timeout,
                    "instance did not answer in time"
                );
                Err(ProxyError::TimedOut {
                    app: Arc::clone(app),
                })
            }
        }
    }
}

impl Upstream {
    /// One exchange with another node's peer listener, over a new TLS
    /// connection (upgrades included: the connection runs until its tunnel
    /// is handed over).
    async fn send_to_peer(
        &self,
        request: Request<UpstreamBody>,
        backend: &Backend,
    ) -> Result<Response<Incoming>, String> {
        let (upstream, _) = self
            .pool
            .get(backend, true)
            .await
            .map_err(|error| error.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(upstream.stream))
            .await
            .map_err(|error| error_chain(&error))?;
        let peer = backend.id.clone();
        self.executor.execute(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%peer, error = %error_chain(&error), "connection to a node proxy ended");
            }
        });
        // hyper's connection writes the target as given: origin form.
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
        if let Ok(uri) = Uri::try_from(if path.starts_with('/') { path } else { "/" }) {
            parts.uri = uri;
        }
        sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(|error| error_chain(&error))
    }
}

/// Rewrites a client's request for `target`: the backend's address in the
/// URI (the upstream client puts origin form on the wire), HTTP/1.1, the
/// client's Host kept, hop-by-hop headers dropped and X-Forwarded-* set.
pub(crate) fn upstream_request<B>(request: Request<B>, target: &Target<'_>) -> Request<B> {
    let (mut parts, body) = rewrite(request, target).into_parts();
    let path = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let path = if path.starts_with('/') { path } else { "/" };
    // A socket address and a path taken from a parsed URI always make a valid URI.
    if let Ok(uri) = Uri::try_from(format!("http://{}{path}", target.backend.addr)) {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

/// [`upstream_request`] but for the URI, which keeps the client's target:
/// for requests that go upstream as raw HTTP/1.1 (`h1::direct`).
pub(crate) fn rewrite<B>(request: Request<B>, target: &Target<'_>) -> Request<B> {
    let (mut parts, body) = request.into_parts();
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    let asked = target.host.authority.as_str();
    // The host the request was routed by: the Host header as sent, or the
    // URI's authority for absolute-form and HTTP/2 requests, which wins over
    // any Host header (RFC 9112, section 3.2.2).
    if let Ok(value) = HeaderValue::from_str(asked) {
        parts.headers.insert(HOST, value);
    }
    set_forwarded(&mut parts.headers, target.client.ip(), target.side, asked);
    Request::from_parts(parts, body)
}

/// An error and its causes on one line: hyper's top-level messages alone
/// ("client error (Connect)") do not say what went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
