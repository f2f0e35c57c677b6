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

use super::chunked::ChunkedScanner;
use super::pool::{Upstream, UpstreamPool};
use super::request::put_header;
use super::response::{self, ResponseBody};
use crate::body::BoxError;

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

/// Sends `head` (a request without a body) to `addr` and waits for the
/// response head, up to `timeout`; informational responses are skipped.
pub(crate) async fn send(
    pool: &Arc<UpstreamPool>,
    addr: SocketAddr,
    head: &[u8],
    head_request: bool,
    idempotent: bool,
    timeout: Duration,
) -> Result<Response<DirectBody>, DirectError> {
    let deadline = Instant::now() + timeout;
    let mut fresh_only = false;
    loop {
        let pooled = if fresh_only { None } else { pool.take(addr) };
        let (mut upstream, reused) = match pooled {
            Some(upstream) => (upstream, true),
            None => match pool.connect(addr).await {
                Ok(upstream) => (upstream, false),
                Err(error) => {
                    tracing::warn!(%addr, %error, "instance did not answer");
                    return Err(DirectError::Unreachable);
                }
            },
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
                    framing: Decoding::of(head.body),
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

/// Where a response body stands.
#[derive(Debug)]
enum Decoding {
    Length(u64),
    Chunked(ChunkedScanner),
    UntilClose,
    Done,
}

impl Decoding {
    fn of(body: ResponseBody) -> Self {
        match body {
            ResponseBody::Empty => Self::Done,
            ResponseBody::Length(length) => Self::Length(length),
            ResponseBody::Chunked => Self::Chunked(ChunkedScanner::new()),
            ResponseBody::UntilClose => Self::UntilClose,
        }
    }

    fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }
}

/// A response body read from its upstream connection as it is polled.
#[derive(Debug)]
pub(crate) struct DirectBody {
    /// None once the body is done (the connection went back to the pool,
    /// or was closed).
    upstream: Option<Upstream>,
    framing: Decoding,
    /// The connection can carry another request once the body is read.
    reusable: bool,
    pool: Arc<UpstreamPool>,
    addr: SocketAddr,
}

impl DirectBody {
    /// The body is read whole: the connection goes back to the pool, or is
    /// closed if it cannot be reused (or has bytes beyond the response).
    fn finish(&mut self) {
        self.framing = Decoding::Done;
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
                let (used, data) = match &mut this.framing {
                    Decoding::Length(left) => {
                        let take = usize::try_from(*left)
                            .map_or(buffered.len(), |left| left.min(buffered.len()));
                        *left -= take as u64;
                        (take, 0..take)
                    }
                    Decoding::UntilClose => (buffered.len(), 0..buffered.len()),
                    Decoding::Chunked(scanner) => match scanner.decode(buffered) {
                        Ok(decoded) => decoded,
                        Err(error) => {
                            this.upstream = None;
                            let error = format!("the instance's chunked response body: {error}");
                            return Poll::Ready(Some(Err(error.into())));
                        }
                    },
                    Decoding::Done => (0, 0..0),
                };
                let data = Bytes::copy_from_slice(&buffered[data]);
                upstream.buf.consume(used);
                let trailers = match &this.framing {
                    Decoding::Length(0) => {
                        this.finish();
                        None
                    }
                    Decoding::Chunked(scanner) if scanner.is_done() => {
                        let trailers = scanner.trailers();
                        this.finish();
                        trailers
                    }
                    _ => None,
                };
                if !data.is_empty() {
                    // Trailers after the last data would be lost here; a
                    // chunked body's last chunk is empty, so its data and
                    // its trailers never come out of one decode.
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if let Some(trailers) = trailers {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                continue;
            }
            match ready!(upstream.buf.poll_fill(cx, &mut upstream.stream)) {
                Ok(read) if read > 0 => {}
                Ok(_) if matches!(this.framing, Decoding::UntilClose) => {
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
            Decoding::Length(left) => SizeHint::with_exact(left),
            Decoding::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
