//! One consistent routing, immutable once built: which app owns each route
//! entry (a host, a wildcard host, either with a path prefix; see
//! `routes_index.rs`), and for each app its local instances and the other nodes' proxies that
//! can serve it. Choosing a backend for one request lives here too.
//!
//! Local instances are always preferred. Only an app with none on this node
//! is forwarded to another node's proxy, and a request that already crossed
//! a node (it came in on the peer listener) is never forwarded again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::load::{InFlight, Load};
use crate::maintenance::MaintenancePage;
use crate::router::Backend;
use crate::routes_index::RoutesIndex;

/// Route entry → app, and app → its routes.
#[derive(Clone, Default)]
pub(crate) struct Table {
    /// Keyed by normalized entry (`example.com/api`).
    pub(crate) hosts: HashMap<String, Arc<AppRoutes>>,
    pub(crate) apps: HashMap<String, Arc<AppRoutes>>,
    /// `hosts` as requests look it up; [`Table::reindex`] after a change.
    pub(crate) index: RoutesIndex,
}

/// What one app is routed to.
pub(crate) struct AppRoutes {
    pub(crate) app: Arc<str>,
    /// Route entries, normalized, sorted, without duplicates.
    pub(crate) domains: Vec<String>,
    /// Plain-HTTP requests get redirected to HTTPS.
    pub(crate) redirect_https: bool,
    /// In maintenance: every request is answered with this page.
    pub(crate) maintenance: Option<Arc<MaintenancePage>>,
    /// This node's instances.
    pub(crate) local: Arc<Pool>,
    /// Other nodes' proxies, used only while `local` is empty.
    pub(crate) remote: Arc<Pool>,
}

/// Backends of one kind, and whose turn it is among idle ones.
#[derive(Default)]
pub(crate) struct Pool {
    pub(crate) slots: Vec<Slot>,
    /// Where the next tie-break starts, so idle backends share the load.
    next: AtomicUsize,
}

/// One backend and its in-flight count.
pub(crate) struct Slot {
    pub(crate) backend: Arc<Backend>,
    pub(crate) load: Arc<Load>,
}

/// The backend chosen for one request; it is counted until `in_flight` drops.
#[derive(Debug)]
pub(crate) struct Pick {
    pub(crate) backend: Arc<Backend>,
    pub(crate) in_flight: InFlight,
}

impl Pool {
    /// A pool of `slots`.
    pub(crate) fn new(slots: Vec<Slot>) -> Self {
        Self {
            slots,
            next: AtomicUsize::new(0),
        }
    }

    /// The backend with the fewest requests in flight, ties taking turns,
    /// now counting one more; None when the pool is empty.
    fn pick(&self) -> Option<(Arc<Backend>, InFlight)> {
        let count = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let (index, _) = (0..count)
            .map(|i| start.wrapping_add(i) % count)
            .map(|index| (index, self.slots[index].load.current()))
            .reduce(|best, this| if this.1 < best.1 { this } else { best })?;
        let slot = &self.slots[index];
        Some((Arc::clone(&slot.backend), slot.load.start()))
    }

    /// The backends, in the order they were given.
    pub(crate) fn backends(&self) -> Vec<Backend> {
        self.slots
            .iter()
            .map(|slot| Backend::clone(&slot.backend))
            .collect()
    }
}

impl AppRoutes {
    /// Chooses where one request goes: a local instance if there is one,
    /// else (unless `local_only`) another node's proxy; None when neither.
    pub(crate) fn pick(&self, local_only: bool) -> Option<Pick> {
        if let Some((backend, in_flight)) = self.local.pick() {
            return Some(Pick { backend, in_flight });
        }
        if local_only {
            return None;
        }
        let (backend, in_flight) = self.remote.pick()?;
        Some(Pick { backend, in_flight })
    }
}

impl Table {
    /// Rebuilds the index requests are routed by from `hosts`.
    pub(crate) fn reindex(&mut self) {
        self.index = RoutesIndex::build(&self.hosts);
    }

    /// Removes `app` and the hosts that still route to it; a host another
    /// app also lists goes back to that app (the first by name), so that
    /// forgetting one app never leaves another's domain unrouted.
    pub(crate) fn forget(&mut self, app: &str) -> Option<Arc<AppRoutes>> {
        let old = self.apps.remove(app)?;
        for domain in &old.domains {
            if self.hosts.get(domain).is_some_and(|r| &*r.app == app) {
                self.hosts.remove(domain);
                let mut others: Vec<&Arc<AppRoutes>> = self
                    .apps
                    .values()
                    .filter(|routes| routes.domains.contains(domain))
                    .collect();
                others.sort_by(|a, b| a.app.cmp(&b.app));
                if let Some(other) = others.first() {
                    self.hosts.insert(domain.clone(), Arc::clone(other));
                }
            }
        }
        Some(old)
    }

    /// Routes `routes.domains` to `routes`, taking them from any other app
    /// (the last writer wins), and drops the domains `app` had before but no
    /// longer lists.
    pub(crate) fn install(&mut self, routes: Arc<AppRoutes>) {
        let app = Arc::clone(&routes.app);
        self.forget(&app);
        for domain in &routes.domains {
            if let Some(previous) = self.hosts.get(domain) {
                if previous.app != app {
                    tracing::warn!(
                        %domain,
                        from = %previous.app,
                        to = %app,
                        "domain moves to another app"
                    );
                }
            }
            self.hosts.insert(domain.clone(), Arc::clone(&routes));
        }
        self.apps.insert(app.to_string(), routes);
    }

    /// Replaces `app`'s routes without moving any domain: a domain another
    /// app took since stays with it.
    pub(crate) fn replace(&mut self, routes: Arc<AppRoutes>) {
        for domain in &routes.domains {
            if let Some(current) = self.hosts.get_mut(domain) {
                if current.app == routes.app {
                    *current = Arc::clone(&routes);
                }
            }
        }
        self.apps.insert(routes.app.to_string(), routes);
    }
}
