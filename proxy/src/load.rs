//! In-flight accounting: how many requests each backend is serving, and the
//! wait that lets a deploy drain an instance before it is stopped.
//!
//! A request is counted from the moment a backend is chosen for it until the
//! proxy is done with its response body, whether the body was sent in full or
//! the client went away. The count lives in a [`Load`] shared by the route
//! table and by every [`InFlight`] guard, so it survives the backend being
//! removed from the routes; the [`LoadRegistry`] only keeps weak references and
//! forgets a backend once nothing holds its `Load` any more.

use std::collections::HashMap;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// The in-flight count of one backend, and the signal that it dropped to zero.
#[derive(Debug, Default)]
pub(crate) struct Load {
    count: AtomicU64,
    idle: Notify,
}

impl Load {
    /// Requests counted right now.
    pub(crate) fn current(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Counts one more request until the returned guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlight {
            load: Arc::clone(self),
        }
    }

    /// Waits until no request is counted, or until `deadline`; true if it got there.
    pub(crate) async fn wait_idle(&self, deadline: Duration) -> bool {
        let idle = async {
            loop {
                // Register for the wake-up before reading the count, so a drop
                // to zero between the read and the await is not missed.
                let mut signalled = pin!(self.idle.notified());
                signalled.as_mut().enable();
                if self.current() == 0 {
                    return;
                }
                signalled.await;
            }
        };
        tokio::time::timeout(deadline, idle).await.is_ok()
    }
}

/// One counted request; dropping it ends the count.
#[derive(Debug)]
pub(crate) struct InFlight {
    load: Arc<Load>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.load.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.load.idle.notify_waiters();
        }
    }
}

/// Every backend's [`Load`], by backend id, held weakly.
#[derive(Debug, Default)]
pub(crate) struct LoadRegistry {
    loads: Mutex<HashMap<String, Weak<Load>>>,
}

impl LoadRegistry {
    /// The load of backend `id`, created when nothing holds one yet.
    pub(crate) fn load_for(&self, id: &str) -> Arc<Load> {
        let mut loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(load) = loads.get(id).and_then(Weak::upgrade) {
            return load;
        }
        let load = Arc::new(Load::default());
        loads.insert(id.to_owned(), Arc::downgrade(&load));
        load
    }

    /// The load of backend `id` if anything (a route or a request) still holds it.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Load>> {
        let loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        loads.get(id).and_then(Weak::upgrade)
    }

    /// Forgets backends that neither a route nor a request holds any more.
    pub(crate) fn prune(&self) {
        let mut loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
        loads.retain(|_, load| load.strong_count() > 0);
    }

    /// How many backends are remembered (for tests of pruning).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.loads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A response body that keeps its request counted until the proxy is done
/// with it: hyper drops the body right after its last frame was written to the
/// client, or when the client connection went away.
#[derive(Debug)]
pub(crate) struct CountedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> CountedBody<B> {
    /// Wraps `inner`, ending `in_flight` when the body is dropped.
    pub(crate) fn new(inner: B, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
