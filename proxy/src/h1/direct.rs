//! The full path's way upstream for requests without a body (nearly every
//! HTTP/2 request: GET, HEAD): the fast path's pooled connections and head
//! handling, with the response body read straight from the connection when
//! hyper polls for it, decoded from its HTTP/1.1 framing. No task sits
//! between the client's stream and the instance, and the connection goes
//! back to the pool as soon as the body's last byte is read.
//!
//! Requests with a body, and upgrades, take hyper's client
//! (`crate::forward`). As on the fast path, a pooled connection found
//! closed before any response byte is replaced and the request sent again
//! once, for an idempotent method.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::framing::Framing;
use super::pool::{Upstream, UpstreamPool};
use super::request::put_header;
use super::response;
use crate::body::BoxError;
use crate::router::Backend;

/// Why no response came.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DirectError {
    /// The instance could not be reached, or broke the exchange.
    Unreachable,
    /// It sent no response head within the upstream timeout.
    TimedOut,
}

/// Writes the head of `request` (already rewritten for the upstream, and
/// without a body) as HTTP/1.1, its target in origin form.
pub(crate) fn write_head<B>(out: &mut Vec<u8>, request: &Request<B>) {
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.starts_with('/') { target } else { "/" }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        put_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Sends `head` (a request without a body) to `backend` and waits for the
/// response head, up to `timeout`; informational responses are skipped.
pub(crate) async fn send(
    pool: &Arc<UpstreamPool>,
    backend: &Backend,
    head: &[u8],
    head_request: bool,
    idempotent: bool,
    timeout: Duration,
) -> Result<Response<DirectBody>, DirectError> {
    let deadline = Instant::now() + timeout;
    let addr = backend.addr;
    let mut fresh_only = false;
    loop {
        let Ok((mut upstream, reused)) = pool.get(backend, fresh_only).await else {
            return Err(DirectError::Unreachable);
        };
        let retry = reused && idempotent && !fresh_only;
        let received = match upstream.stream.write_all(head).await {
            Ok(()) => read_head(&mut upstream, deadline, head_request).await,
            Err(_) => Err(Received::Nothing),
        };
        match received {
            Ok((head, parts)) => {
                let mut body = DirectBody {
                    upstream: Some(upstream),
                    framing: Framing::of_response(head.body),
                    reusable: head.reusable,
                    pool: Arc::clone(pool),
                    addr,
                };
                if body.framing.is_done() {
                    body.finish();
                }
                return Ok(Response::from_parts(parts, body));
            }
            Err(Received::Nothing) if retry => fresh_only = true,
            Err(Received::Nothing | Received::Broken) => {
                tracing::warn!(%addr, "instance did not answer");
                return Err(DirectError::Unreachable);
            }
            Err(Received::TimedOut) => {
                tracing::warn!(%addr, ?timeout, "instance did not answer in time");
                return Err(DirectError::TimedOut);
            }
        }
    }
}

/// What came back instead of a response head.
enum Received {
    /// Not a byte: the connection was closed (or broken) first.
    Nothing,
    /// Part of a head, or one that cannot be forwarded.
    Broken,
    TimedOut,
}

async fn read_head(
    upstream: &mut Upstream,
    deadline: Instant,
    head_request: bool,
) -> Result<(response::ResponseHead, http::response::Parts), Received> {
    let mut received = false;
    loop {
        if !upstream.buf.is_empty() {
            received = true;
            match response::parse_for_hyper(upstream.buf.filled(), head_request) {
                Ok(Some((head, _))) if head.status < 200 => {
                    upstream.buf.consume(head.len);
                    continue;
                }
                Ok(Some((head, parts))) => {
                    upstream.buf.consume(head.len);
                    return Ok((head, parts));
                }
                Ok(None) if upstream.buf.is_full() => return Err(Received::Broken),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "instance sent a response that cannot be forwarded");
                    return Err(Received::Broken);
                }
            }
        }
        match tokio::time::timeout_at(deadline, upstream.buf.fill(&mut upstream.stream)).await {
            Err(_) => return Err(Received::TimedOut),
            Ok(Ok(read)) if read > 0 => {}
            Ok(_) if received => return Err(Received::Broken),
            Ok(_) => return Err(Received::Nothing),
        }
    }
}

/// A response body read from its upstream connection as it is polled.
#[derive(Debug)]
pub(crate) struct DirectBody {
    /// None once the body is done (the connection went back to the pool,
    /// or was closed).
    upstream: Option<Upstream>,
    framing: Framing,
    /// The connection can carry another request once the body is read.
    reusable: bool,
    pool: Arc<UpstreamPool>,
    addr: SocketAddr,
}

impl DirectBody {
    /// The body is read whole: the connection goes back to the pool, or is
    /// closed if it cannot be reused (or has bytes beyond the response).
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let Some(upstream) = self.upstream.take() {
            if self.reusable && upstream.buf.is_empty() {
                self.pool.put(self.addr, upstream);
            }
        }
    }
}

impl Body for DirectBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(upstream) = this.upstream.as_mut() else {
                return Poll::Ready(None);
            };
            if !upstream.buf.is_empty() {
                let buffered = upstream.buf.filled();
                let decoded = match this.framing.decode(buffered) {
                    Ok(decoded) => decoded,
                    Err(_) => {
                        this.upstream = None;
                        let error = "the instance's chunked response body is not valid";
                        return Poll::Ready(Some(Err(error.into())));
                    }
                };
                let data = Bytes::copy_from_slice(&buffered[decoded.data]);
                upstream.buf.consume(decoded.used);
                if this.framing.is_done() {
                    this.finish();
                }
                // A chunked body's last chunk is empty: its data and its
                // trailers never come out of one decode.
                if !data.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if let Some(trailers) = decoded.trailers {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                continue;
            }
            match ready!(upstream.buf.poll_fill(cx, &mut upstream.stream)) {
                Ok(read) if read > 0 => {}
                Ok(_) if matches!(this.framing, Framing::UntilClose) => {
                    this.reusable = false;
                    this.finish();
                }
                Ok(_) => {
                    this.upstream = None;
                    return Poll::Ready(Some(Err(
                        "the instance closed its connection in the middle of the response".into(),
                    )));
                }
                Err(error) => {
                    this.upstream = None;
                    return Poll::Ready(Some(Err(error.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.upstream.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
