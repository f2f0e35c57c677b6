//! Answering one request, in order: ACME challenges (plain HTTP only), the
//! host's route, the HTTPS redirect (plain HTTP only), the maintenance page
//! of an app in maintenance, the body size limit,
//! the choice of backend (local first, another node's proxy only for an app
//! with no local instance and a request that did not cross a node already),
//! then the upstream exchange or an upgrade tunnel. Every request is
//! recorded in the metrics and the access log, answered or not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::UPGRADE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::{AccessRecord, LoggedBody};
use crate::body::{empty, BoxError, ProxyBody};
use crate::error::ProxyError;
use crate::forward::{rewrite, upstream_request, Target, Upstream};
use crate::h1::direct::{self, DirectError};
use crate::h1::UpstreamPool;
use crate::headers::strip_hop_by_hop;
use crate::host::requested_host;
use crate::limits::{check_declared_length, BodyCut, LimitedBody};
use crate::load::CountedBody;
use crate::pages::error_page;
use crate::redirect::{https_location, redirect};
use crate::router::Router;
use crate::side::Side;
use crate::table::Pick;
use crate::upgrade::{is_upgrade, keep_upgrade_headers, Tunnel};
use crate::{acme, ProxyConfig};

/// Answers the requests of one listener.
#[derive(Debug)]
pub(crate) struct Handler {
    router: Router,
    upstream: Upstream,
    /// The upstream connections requests without a body go over (shared
    /// with the fast path).
    pool: Arc<UpstreamPool>,
    upstream_timeout: Duration,
    /// Which listener it answers for.
    side: Side,
    https_port: u16,
    max_body: u64,
    body_timeout: Duration,
    /// How long the two halves of an upgrade may take to be handed over.
    handover_timeout: Duration,
    /// Where upgrade tunnels run, so shutdown waits for them.
    tunnels: TaskTracker,
    /// Cancelled when the shutdown grace is over: every request still
    /// running ends.
    close_now: CancellationToken,
}

impl Handler {
    /// A handler for the listener on `side`, whose tunnels run on `tunnels`.
    pub(crate) fn new(
        router: Router,
        upstream: Upstream,
        pool: Arc<UpstreamPool>,
        config: &ProxyConfig,
        side: Side,
        tunnels: TaskTracker,
        close_now: CancellationToken,
    ) -> Self {
        Self {
            router,
            upstream,
            pool,
            upstream_timeout: config.upstream_timeout,
            side,
            https_port: config.https_port,
            max_body: config.max_request_body_bytes,
            body_timeout: config.client_body_timeout,
            handover_timeout: config.upstream_timeout,
            tunnels,
            close_now,
        }
    }

    /// Answers `request` from `client`: the backend's response, or one the
    /// proxy wrote. Its access-log event is written once the response body is done.
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<ProxyBody> {
        let mut record = AccessRecord::start(&request, client, self.side.tls());
        let version = request.version();
        let outcome = tokio::select! {
            outcome = self.respond(request, client, &mut record) => outcome,
            () = self.close_now.cancelled() => Err(ProxyError::ShuttingDown),
        };
        let response = outcome.unwrap_or_else(|error| {
            tracing::debug!(%client, %error, "request answered by the proxy");
            error_page(&error, version)
        });
        record.status = Some(response.status());
        self.router.metrics().record(
            record.app_label(),
            response.status(),
            record.started.elapsed(),
        );
        response.map(|body| LoggedBody::new(body, record).boxed())
    }

    async fn respond(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
        record: &mut AccessRecord,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        if self.side.is_plain() {
            if let Some(answer) = acme::answer(self.router.challenges(), &request).await {
                return Ok(answer);
            }
        }
        let host = requested_host(&request).ok_or(ProxyError::BadHost)?;
        record.host = Some(host.name.clone());
        let routes = self
            .router
            .lookup(&host.name, request.uri().path())
            .ok_or_else(|| ProxyError::UnknownHost {
                host: host.name.clone(),
            })?;
        record.app = Some(Arc::clone(&routes.app));
        // A request another node forwarded comes in on the peer listener,
        // that node having applied the redirect already.
        if self.side.is_plain() && routes.redirect_https {
            let location = https_location(&host.name, self.https_port, request.uri())
                .ok_or(ProxyError::BadHost)?;
            return Ok(redirect(location));
        }
        if let Some(page) = &routes.maintenance {
            return Ok(page.response());
        }
        check_declared_length(request.headers(), self.max_body)?;
        // A request from another node is served here or not at all.
        let pick = routes
            .pick(self.side.is_peer())
            .ok_or_else(|| ProxyError::NoInstance {
                app: Arc::clone(&routes.app),
            })?;
        record.backend = Some(pick.backend.id.clone());
        let backend = Arc::clone(&pick.backend);
        let target = Target {
            backend: &backend,
            host: &host,
            client,
            side: self.side,
        };
        if is_upgrade(&request) {
            return self.upgrade(request, &target, &routes.app, pick).await;
        }
        self.forward(request, &target, &routes.app, pick).await
    }

    /// The ordinary exchange: the client's body streams up, the backend's
    /// response streams back, counted until its body is done. A request
    /// with no body goes over the pooled connections directly
    /// (`h1::direct`); one with a body through hyper's client.
    async fn forward(
        &self,
        request: Request<Incoming>,
        target: &Target<'_>,
        app: &Arc<str>,
        pick: Pick,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        if request.body().is_end_stream() {
            return self.forward_direct(request, target, app, pick).await;
        }
        let cut = BodyCut::default();
        let request = request
            .map(|body| LimitedBody::new(body, self.max_body, self.body_timeout, cut.clone()));
        let upstream = upstream_request(request, target);
        let response = self
            .upstream
            .send(upstream, app, &pick.backend)
            .await
            // An exchange that failed because the client's body was cut is the client's doing.
            .map_err(|error| cut.error(self.max_body).unwrap_or(error))?;
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body = CountedBody::new(body, pick.in_flight)
            .map_err(BoxError::from)
            .boxed();
        Ok(Response::from_parts(parts, body))
    }

    /// [`Handler::forward`] for a request with no body.
    async fn forward_direct(
        &self,
        request: Request<Incoming>,
        target: &Target<'_>,
        app: &Arc<str>,
        pick: Pick,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let request = rewrite(request, target);
        let mut head = Vec::with_capacity(512);
        direct::write_head(&mut head, &request);
        let method = request.method();
        let idempotent = method.is_idempotent();
        let head_request = method == Method::HEAD;
        let response = direct::send(
            &self.pool,
            &pick.backend,
            &head,
            head_request,
            idempotent,
            self.upstream_timeout,
        )
        .await
        .map_err(|error| match error {
            DirectError::Unreachable => ProxyError::Unreachable {
                app: Arc::clone(app),
            },
            DirectError::TimedOut => ProxyError::TimedOut {
                app: Arc::clone(app),
            },
        })?;
        Ok(response.map(|body| CountedBody::new(body, pick.in_flight).boxed()))
    }

    /// An upgrade: forwarded with its upgrade headers; on 101 both
    /// connections are joined by a tunnel, otherwise the backend's answer
    /// goes back as usual.
    async fn upgrade(
        &self,
        mut request: Request<Incoming>,
        target: &Target<'_>,
        app: &Arc<str>,
        pick: Pick,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let client_side = hyper::upgrade::on(&mut request);
        let protocol = request.headers().get(UPGRADE).cloned();
        let request = request.map(|body| {
            LimitedBody::new(body, self.max_body, self.body_timeout, BodyCut::default())
        });
        let mut upstream = upstream_request(request, target);
        if let Some(protocol) = protocol {
            keep_upgrade_headers(upstream.headers_mut(), protocol);
        }
        let mut response = self.upstream.send(upstream, app, &pick.backend).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let body = CountedBody::new(body, pick.in_flight)
                .map_err(BoxError::from)
                .boxed();
            return Ok(Response::from_parts(parts, body));
        }
        let upstream_side = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        let protocol = parts.headers.get(UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = protocol {
            keep_upgrade_headers(&mut parts.headers, protocol);
        }
        Tunnel {
            client: client_side,
            upstream: upstream_side,
            in_flight: pick.in_flight,
            app: Arc::clone(app),
            backend: pick.backend.id.clone(),
            handover_timeout: self.handover_timeout,
        }
        .spawn(&self.tunnels, self.close_now.clone());
        Ok(Response::from_parts(parts, empty()))
    }
}
