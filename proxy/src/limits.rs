//! Limits on what a client may send in a request body: its size
//! (`max_request_body_bytes`) and how long it may stall
//! (`client_body_timeout`).
//!
//! A body over its limit, or one that makes no progress for the timeout, ends
//! in an error where the next frame would have been: the upstream request is
//! aborted, and the proxy answers 413 or 408 if the instance had not answered
//! yet. Only that request suffers; the proxy reads every other client's body
//! on its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;
use crate::error::ProxyError;

/// Why a request body was cut off.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// It grew past the limit.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// Nothing arrived for the body timeout.
    #[error("the request body made no progress for {timeout:?}")]
    Stalled { timeout: Duration },
}

/// Whether (and why) a [`LimitedBody`] was cut off, readable after the body
/// itself was handed to the upstream client.
#[derive(Clone, Debug, Default)]
pub(crate) struct BodyCut(Arc<AtomicU8>);

// 0: not cut.
const CUT_TOO_LARGE: u8 = 1;
const CUT_STALLED: u8 = 2;

impl BodyCut {
    /// The answer the client gets for a cut body; None if it was not cut.
    pub(crate) fn error(&self, limit: u64) -> Option<ProxyError> {
        match self.0.load(Ordering::Acquire) {
            CUT_TOO_LARGE => Some(ProxyError::BodyTooLarge { limit }),
            CUT_STALLED => Some(ProxyError::BodyStalled),
            _ => None,
        }
    }

    fn set(&self, reason: u8) {
        self.0.store(reason, Ordering::Release);
    }
}

/// Refuses at once a request whose declared length is over `limit`.
pub(crate) fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), ProxyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(ProxyError::BodyTooLarge { limit }),
        _ => Ok(()),
    }
}

/// A request body with a size limit and a stall timeout.
#[derive(Debug)]
pub(crate) struct LimitedBody<B> {
    inner: B,
    limit: u64,
    received: u64,
    stall_timeout: Duration,
    /// Armed while the proxy waits on the client; created on the first wait.
    stall: Option<Pin<Box<Sleep>>>,
    /// Whether the last poll found nothing, so the stall timer is running.
    /// Time the upstream spends not asking for more is not the client's stall.
    waiting: bool,
    cut: BodyCut,
    done: bool,
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`; `cut` tells afterwards whether it was cut off.
    pub(crate) fn new(inner: B, limit: u64, stall_timeout: Duration, cut: BodyCut) -> Self {
        Self {
            inner,
            limit,
            received: 0,
            stall_timeout,
            stall: None,
            waiting: false,
            cut,
            done: false,
        }
    }

    fn fail(
        &mut self,
        reason: u8,
        error: BodyError,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.done = true;
        self.cut.set(reason);
        Poll::Ready(Some(Err(error.into())))
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                    if this.received > this.limit {
                        let limit = this.limit;
                        return this.fail(CUT_TOO_LARGE, BodyError::TooLarge { limit });
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.done = true;
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.stall_timeout;
                let stall = match &mut this.stall {
                    Some(stall) if this.waiting => stall,
                    Some(stall) => {
                        stall.as_mut().reset(deadline);
                        stall
                    }
                    None => this
                        .stall
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                this.waiting = true;
                ready!(stall.as_mut().poll(cx));
                let timeout = this.stall_timeout;
                this.fail(CUT_STALLED, BodyError::Stalled { timeout })
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
