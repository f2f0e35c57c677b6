//! Forwarding one request: find its host's route, pick an instance, rewrite
//! the request for it, and stream the instance's answer back with the request
//! still counted until its body is done.
//!
//! Bodies are never collected: the client's request body is handed to the
//! upstream connection as it arrives, and the upstream's response body is
//! handed to the client connection frame by frame.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::ProxyError;
use crate::headers::{add_forwarded, strip_hop_by_hop};
use crate::host::{requested_host, RequestedHost};
use crate::load::CountedBody;
use crate::pages::error_page;
use crate::routes::{Backend, Route, Router};
use crate::ProxyConfig;

/// Any error a response body can fail with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the proxy sends: an instance's streamed body or an error page.
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

/// How long an unused upstream connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Forwards requests to the instances the router picks.
#[derive(Debug)]
pub(crate) struct Forwarder {
    router: Router,
    client: Client<HttpConnector, Incoming>,
    upstream_timeout: Duration,
}

impl Forwarder {
    /// A forwarder with its own pool of upstream connections.
    pub(crate) fn new(router: Router, config: &ProxyConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.upstream_connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Self {
            router,
            client,
            upstream_timeout: config.upstream_timeout,
        }
    }

    /// Answers `request` from `client`: the instance's response, or an error page.
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<ProxyBody> {
        match self.forward(request, client).await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%client, %error, "request answered by the proxy");
                error_page(&error)
            }
        }
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let host = requested_host(&request).ok_or(ProxyError::BadHost)?;
        let (app, backend, in_flight) = match self.router.route(&host.name) {
            Route::UnknownHost => return Err(ProxyError::UnknownHost { host: host.name }),
            Route::NoInstance { app } => return Err(ProxyError::NoInstance { app }),
            Route::Forward {
                app,
                backend,
                in_flight,
            } => (app, backend, in_flight),
        };
        let upstream = upstream_request(request, &backend, &host, client);
        let exchange = self.client.request(upstream);
        let response = match tokio::time::timeout(self.upstream_timeout, exchange).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                tracing::warn!(
                    %app,
                    backend = %backend.id,
                    error = %error_chain(&error),
                    "instance did not answer"
                );
                return Err(ProxyError::Unreachable { app });
            }
            Err(_) => {
                tracing::warn!(
                    %app,
                    backend = %backend.id,
                    timeout = ?self.upstream_timeout,
                    "instance did not answer in time"
                );
                return Err(ProxyError::TimedOut { app });
            }
        };
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = CountedBody::new(body, in_flight)
            .map_err(BoxError::from)
            .boxed();
        Ok(Response::from_parts(parts, body))
    }
}

/// Rewrites a client's request for `backend`: the backend's address in the
/// URI (the upstream client puts origin form on the wire), HTTP/1.1, the
/// client's Host kept, hop-by-hop headers dropped and X-Forwarded-* added.
fn upstream_request(
    request: Request<Incoming>,
    backend: &Backend,
    host: &RequestedHost,
    client: SocketAddr,
) -> Request<Incoming> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
    // A socket address and a path taken from a parsed URI always make a valid URI.
    if let Ok(uri) = Uri::try_from(format!("http://{}{path}", backend.addr)) {
        parts.uri = uri;
    }
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    let asked = host.authority.as_str();
    if !parts.headers.contains_key(HOST) {
        // Absolute-form request: the instance still learns the host asked for.
        if let Ok(value) = HeaderValue::from_str(asked) {
            parts.headers.insert(HOST, value);
        }
    }
    add_forwarded(&mut parts.headers, client.ip(), "http", asked);
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
