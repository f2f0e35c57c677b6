//! A deadline for a new connection's first bytes. hyper's header timeout only
//! starts once it knows the protocol, and telling HTTP/1.1 from HTTP/2 takes
//! reading the first bytes with no timeout at all; without this, a client
//! that connects and sends nothing would hold its connection forever.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// As many bytes as the HTTP/2 connection preface: enough to tell the
/// protocols apart, after which hyper's own timeouts take over.
const FIRST_BYTES: usize = 24;

/// An IO whose reads fail with `TimedOut` if the first [`FIRST_BYTES`] have
/// not arrived by the deadline.
#[derive(Debug)]
pub(crate) struct FirstBytesDeadline<I> {
    inner: I,
    /// None once enough bytes arrived.
    deadline: Option<Pin<Box<Sleep>>>,
    missing: usize,
}

impl<I> FirstBytesDeadline<I> {
    /// Wraps `inner`; its first bytes must arrive within `timeout` from now.
    pub(crate) fn new(inner: I, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            missing: FIRST_BYTES,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for FirstBytesDeadline<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(deadline) = &mut this.deadline else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                this.missing = this.missing.saturating_sub(read);
                if this.missing == 0 || read == 0 {
                    // Enough to go on, or the client closed: either way no
                    // more waiting on it here.
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent nothing in time",
                ))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for FirstBytesDeadline<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[path = "deadline_tests.rs"]
mod tests;
