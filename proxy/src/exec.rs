//! The executor hyper spawns its own tasks on (HTTP/2 streams, upstream
//! connections): every one lands in a [`TaskTracker`], so shutdown can wait
//! for them instead of leaving them behind.

use std::future::Future;

use tokio_util::task::TaskTracker;

/// Spawns hyper's tasks on the tokio runtime, tracked.
#[derive(Clone, Debug)]
pub(crate) struct TrackedExecutor {
    tasks: TaskTracker,
}

impl TrackedExecutor {
    /// An executor whose tasks `tasks` tracks.
    pub(crate) fn new(tasks: TaskTracker) -> Self {
        Self { tasks }
    }
}

impl<F> hyper::rt::Executor<F> for TrackedExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.tasks.spawn(future);
    }
}
