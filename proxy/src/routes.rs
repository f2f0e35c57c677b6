//! The route table: which app owns each host name, and which local instances
//! of that app take its requests.
//!
//! The table is immutable once built; a change builds a new one and swaps it
//! in under a lock that is never held across an await, so every request sees
//! either the whole old routing or the whole new one. That is the first half
//! of a blue-green swap: route to the new instance, then [`Router::drain`] the
//! old one before it is stopped.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::host::normalize;
use crate::load::{InFlight, Load, LoadRegistry};

/// One instance of an app that can take requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Identifies the instance across route changes; in-flight counts are kept by this id.
    pub id: String,
    /// Where the instance listens, normally `127.0.0.1:PORT`.
    pub addr: SocketAddr,
}

/// The routing state shared by the proxy and the agent. Cheap to clone (Arc inside).
#[derive(Clone, Default)]
pub struct Router {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    table: RwLock<Arc<Table>>,
    loads: LoadRegistry,
}

/// One consistent routing: host → app, and app → its routes.
#[derive(Clone, Default)]
struct Table {
    hosts: HashMap<String, Arc<AppRoutes>>,
    apps: HashMap<String, Arc<AppRoutes>>,
}

/// What one app is routed to.
struct AppRoutes {
    app: Arc<str>,
    domains: Vec<String>,
    backends: Vec<Slot>,
    /// Where the next tie-break starts, so idle backends share the load.
    next: AtomicUsize,
}

struct Slot {
    backend: Arc<Backend>,
    load: Arc<Load>,
}

/// Where a request for one host goes.
#[derive(Debug)]
pub(crate) enum Route {
    /// No app owns the host.
    UnknownHost,
    /// The app is known but has no instance to take the request.
    NoInstance { app: Arc<str> },
    /// Forward to `backend`; the request is counted until `in_flight` is dropped.
    Forward {
        app: Arc<str>,
        backend: Arc<Backend>,
        in_flight: InFlight,
    },
}

impl Router {
    /// An empty router: every host answers 404.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `domains` (lowercase host names) to `backends` for app `app`, replacing whatever the app
    /// had (including domains it no longer lists). Atomic: every request sees either the whole old or the
    /// whole new routing. An app with no backends stays known: its hosts answer 503.
    ///
    /// A domain another app owned moves to `app` (the last writer wins).
    pub fn set_app(&self, app: &str, domains: &[String], backends: Vec<Backend>) {
        let backends = backends
            .into_iter()
            .map(|backend| Slot {
                load: self.shared.loads.load_for(&backend.id),
                backend: Arc::new(backend),
            })
            .collect();
        let mut domains: Vec<String> = domains.iter().map(|d| normalize(d)).collect();
        domains.sort();
        domains.dedup();
        let routes = Arc::new(AppRoutes {
            app: Arc::from(app),
            domains,
            backends,
            next: AtomicUsize::new(0),
        });
        self.update(|table| {
            table.forget(app);
            for domain in &routes.domains {
                if let Some(previous) = table.hosts.get(domain) {
                    if &*previous.app != app {
                        tracing::warn!(
                            %domain,
                            from = %previous.app,
                            to = %app,
                            "domain moves to another app"
                        );
                    }
                }
                table.hosts.insert(domain.clone(), Arc::clone(&routes));
            }
            table.apps.insert(app.to_owned(), routes);
        });
    }

    /// Forgets an app; its hosts answer 404 afterwards.
    pub fn remove_app(&self, app: &str) {
        self.update(|table| table.forget(app));
    }

    /// The backends `host` currently routes to (None: unknown host).
    pub fn backends_for(&self, host: &str) -> Option<Vec<Backend>> {
        let table = self.table();
        let routes = table.hosts.get(&normalize(host))?;
        Some(
            routes
                .backends
                .iter()
                .map(|slot| Backend::clone(&slot.backend))
                .collect(),
        )
    }

    /// Requests backend `id` is serving right now: counted from the moment a request is routed to it until
    /// its response body has been completely sent to the client (or the client went away).
    pub fn in_flight(&self, backend_id: &str) -> u64 {
        self.shared
            .loads
            .get(backend_id)
            .map_or(0, |load| load.current())
    }

    /// Waits until backend `id` has no in-flight requests, or until `deadline`; true if it drained.
    ///
    /// Call it after the backend was routed away from: requests routed to it
    /// while this waits are waited for too.
    pub async fn drain(&self, backend_id: &str, deadline: Duration) -> bool {
        match self.shared.loads.get(backend_id) {
            Some(load) => load.wait_idle(deadline).await,
            None => true,
        }
    }

    /// Chooses where a request for `host` (already normalized) goes, and
    /// starts counting it: the backend with the fewest requests in flight,
    /// ties taking turns.
    pub(crate) fn route(&self, host: &str) -> Route {
        let table = self.table();
        let Some(routes) = table.hosts.get(host) else {
            return Route::UnknownHost;
        };
        let count = routes.backends.len();
        let start = routes.next.fetch_add(1, Ordering::Relaxed);
        let chosen = (0..count)
            .map(|i| start.wrapping_add(i) % count)
            .map(|index| (index, routes.backends[index].load.current()))
            .reduce(|best, this| if this.1 < best.1 { this } else { best });
        match chosen {
            None => Route::NoInstance {
                app: Arc::clone(&routes.app),
            },
            Some((index, _)) => {
                let slot = &routes.backends[index];
                Route::Forward {
                    app: Arc::clone(&routes.app),
                    backend: Arc::clone(&slot.backend),
                    in_flight: slot.load.start(),
                }
            }
        }
    }

    fn table(&self) -> Arc<Table> {
        let table = self
            .shared
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&table)
    }

    /// Builds the next table from the current one and swaps it in.
    fn update(&self, change: impl FnOnce(&mut Table)) {
        {
            let mut current = self
                .shared
                .table
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut next = Table::clone(&current);
            change(&mut next);
            *current = Arc::new(next);
        }
        self.shared.loads.prune();
    }

    /// How many backends have a counter (for tests of pruning).
    #[cfg(test)]
    pub(crate) fn counters(&self) -> usize {
        self.shared.loads.len()
    }
}

impl Table {
    /// Removes `app` and the hosts that still route to it.
    fn forget(&mut self, app: &str) {
        if let Some(old) = self.apps.remove(app) {
            for domain in &old.domains {
                if self.hosts.get(domain).is_some_and(|r| &*r.app == app) {
                    self.hosts.remove(domain);
                }
            }
        }
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.table();
        let mut apps: Vec<&str> = table.apps.keys().map(String::as_str).collect();
        apps.sort_unstable();
        f.debug_struct("Router").field("apps", &apps).finish()
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
