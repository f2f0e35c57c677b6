//! The access log: one `tracing` event per request, at target
//! `reef_proxy::access`, once the proxy is done with its response (sent in
//! full, or the client went away). It names the method, host, path (without
//! the query, which often carries secrets), status, app, backend, client
//! address, protocol, response bytes sent and the duration in milliseconds.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use hyper::body::{Body, Frame, SizeHint};

/// The target every access-log event has, to filter them in or out.
pub const ACCESS_TARGET: &str = "reef_proxy::access";

/// What the access log says about one request; filled in as it is handled,
/// and written when dropped, so a request is logged exactly once even when
/// its client went away before it was answered (status 0).
#[derive(Debug)]
pub(crate) struct AccessRecord {
    pub(crate) started: Instant,
    method: Method,
    path: String,
    version: Version,
    client: SocketAddr,
    tls: bool,
    /// The normalized host, once known.
    pub(crate) host: Option<String>,
    /// The app that owns the host, once known.
    pub(crate) app: Option<Arc<str>>,
    /// The backend the request went to, if any.
    pub(crate) backend: Option<String>,
    /// The response status, once there is a response.
    pub(crate) status: Option<StatusCode>,
    /// Response body bytes handed to the client connection.
    bytes: u64,
}

impl AccessRecord {
    /// Starts the record of `request` from `client`.
    pub(crate) fn start<B>(request: &Request<B>, client: SocketAddr, tls: bool) -> Self {
        Self::new(
            Instant::now(),
            request.method().clone(),
            request.uri().path().to_owned(),
            request.version(),
            client,
            tls,
        )
    }

    /// Starts the record of a request that began at `started`.
    pub(crate) fn new(
        started: Instant,
        method: Method,
        path: String,
        version: Version,
        client: SocketAddr,
        tls: bool,
    ) -> Self {
        Self {
            started,
            method,
            path,
            version,
            client,
            tls,
            host: None,
            app: None,
            backend: None,
            status: None,
            bytes: 0,
        }
    }

    /// Counts `bytes` more of the response body handed to the client.
    pub(crate) fn add_bytes(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes as u64);
    }

    /// Whether access-log events are written at all: when they are not, the
    /// fast path builds no record.
    pub(crate) fn enabled() -> bool {
        tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO)
    }

    /// The app label for metrics: "" when no app was found.
    pub(crate) fn app_label(&self) -> &str {
        self.app.as_deref().unwrap_or("")
    }

    /// Writes the event, `elapsed` after the start.
    fn emit(&self, elapsed: Duration) {
        tracing::info!(
            target: ACCESS_TARGET,
            method = %self.method,
            host = self.host.as_deref().unwrap_or(""),
            path = %self.path,
            status = self.status.map_or(0, |status| status.as_u16()),
            app = self.app_label(),
            backend = self.backend.as_deref().unwrap_or(""),
            client = %self.client,
            protocol = protocol(self.version),
            tls = self.tls,
            bytes = self.bytes,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        self.emit(self.started.elapsed());
    }
}

/// How a protocol version is written in the log.
fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "unknown",
    }
}

/// A response body that counts the bytes it yields into its record, which
/// is written when hyper drops the body: after its last frame, or when the
/// client went away.
#[derive(Debug)]
pub(crate) struct LoggedBody<B> {
    inner: B,
    record: AccessRecord,
}

impl<B> LoggedBody<B> {
    /// Wraps `inner`, logging `record` when done.
    pub(crate) fn new(inner: B, record: AccessRecord) -> Self {
        Self { inner, record }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for LoggedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.record.bytes = this.record.bytes.saturating_add(data.len() as u64);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
