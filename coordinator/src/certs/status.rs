//! [`Handle`]: what the leader's API shares with its certificate manager:
//! the state of each domain the manager looks after (shown by `reef certs
//! list`), and a way to ask for a pass now (after `reef certs add` or `rm`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::Notify;

/// Where the manager stands with one domain an app wants.
#[derive(Clone, Debug, Default)]
pub(crate) struct DomainStatus {
    /// The app that lists the domain.
    pub app: String,
    /// Failed orders in a row.
    pub failures: u32,
    /// The last failure, from the CA or the cluster.
    pub last_error: Option<String>,
    /// No new order before this.
    pub retry_at: Option<Instant>,
    /// An order is running now.
    pub issuing: bool,
}

/// Cheap to clone; shared between the API and the manager of one term.
#[derive(Clone, Default)]
pub(crate) struct Handle {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    domains: Mutex<BTreeMap<String, DomainStatus>>,
    nudge: Notify,
}

impl Handle {
    /// Asks for a pass soon.
    pub(crate) fn nudge(&self) {
        self.shared.nudge.notify_one();
    }

    /// Resolves when a pass was asked for.
    pub(crate) async fn nudged(&self) {
        self.shared.nudge.notified().await;
    }

    /// Changes the state of the domains under the lock (never held across an await).
    pub(crate) fn update<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, DomainStatus>) -> T,
    ) -> T {
        change(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, DomainStatus>> {
        // Every change is a whole-entry update: the map stays consistent after a panic.
        self.shared
            .domains
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
