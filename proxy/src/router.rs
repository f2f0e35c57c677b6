//! The [`Router`] the agent updates: which app owns each host name, which
//! local instances and which other nodes' proxies can serve it, and whether
//! its plain-HTTP requests are redirected to HTTPS. It also hands out the
//! stores the proxy shares with the agent: ACME challenges and metrics.
//!
//! The table is immutable once built; a change builds a new one and swaps it
//! in under a lock that is never held across an await, so every request sees
//! either the whole old routing or the whole new one. That is the first half
//! of a blue-green swap: route to the new instance, then [`Router::drain`] the
//! old one before it is stopped.
//!
//! Local instances and remote nodes are set apart ([`Router::set_app`] and
//! [`Router::set_remote`]) because different parts of the agent own them: the
//! deploy code manages this node's instances, a routes watcher the rest of
//! the cluster. Neither overwrites the other.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::acme::Challenges;
use crate::host::normalize;
use crate::load::LoadRegistry;
use crate::maintenance::MaintenancePage;
use crate::metrics::Metrics;
use crate::routes_index::normalize_entry;
use crate::table::{AppRoutes, Pool, Slot, Table};

/// Somewhere requests for an app can be sent: a local instance (given to
/// [`Router::set_app`]) or another node's proxy (given to [`Router::set_remote`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Identifies the backend across route changes; in-flight counts are kept by this id.
    pub id: String,
    /// Where it listens: `127.0.0.1:PORT` for a local instance, the peer
    /// listener ([`serve_peer`](crate::serve_peer)) for another node.
    pub addr: SocketAddr,
    /// For another node: the name its certificate must carry; it is
    /// reached over mutual TLS with [`ProxyConfig::peer`](crate::ProxyConfig).
    /// None: plain TCP (local instances, and peer listeners without TLS in
    /// measurements).
    pub tls_name: Option<Arc<str>>,
}

impl Backend {
    /// A backend named `id` at `addr`, reached over plain TCP.
    pub fn new(id: impl Into<String>, addr: SocketAddr) -> Self {
        Self {
            id: id.into(),
            addr,
            tls_name: None,
        }
    }

    /// The same backend reached over mutual TLS, its certificate naming `name`.
    pub fn with_tls_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.tls_name = Some(name.into());
        self
    }
}

/// Everything [`Router::set_app_with`] sets for an app.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppRoute {
    /// Route entries: host names (any case, a trailing dot allowed) or
    /// one-label wildcards (`*.example.com`), each optionally followed by a
    /// path prefix (`example.com/api`); see [`Router::set_app_with`].
    pub domains: Vec<String>,
    /// This node's instances of the app.
    pub backends: Vec<Backend>,
    /// Answer plain-HTTP requests with a 308 redirect to HTTPS (ACME
    /// challenges excepted).
    pub redirect_https: bool,
    /// In maintenance: every request for the app is answered with this
    /// page (after the HTTPS redirect), none forwarded.
    pub maintenance: Option<Arc<MaintenancePage>>,
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
    challenges: Challenges,
    metrics: Metrics,
}

impl Router {
    /// An empty router: every host answers 404.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `domains` to the local instances `backends` for app `app`, with
    /// no HTTPS redirect; see [`Router::set_app_with`].
    pub fn set_app(&self, app: &str, domains: &[String], backends: Vec<Backend>) {
        self.set_app_with(
            app,
            AppRoute {
                domains: domains.to_vec(),
                backends,
                redirect_https: false,
                maintenance: None,
            },
        );
    }

    /// Sets app `app`'s domains, local instances and redirect, replacing what
    /// it had (including domains it no longer lists); the remote backends
    /// given to [`Router::set_remote`] stay. Atomic: every request sees either
    /// the whole old or the whole new routing. An app with no backend at all
    /// stays known: its hosts answer 503.
    ///
    /// A domain another app owned moves to `app` (the last writer wins).
    ///
    /// A request goes to the entry of its host with the longest path prefix
    /// that takes its path on whole segments (`/api` takes `/api/x`, not
    /// `/apix`); an exact host before a `*.parent` wildcard, which covers
    /// one label. The path is forwarded unchanged.
    pub fn set_app_with(&self, app: &str, route: AppRoute) {
        let local = Arc::new(self.pool(route.backends));
        let mut domains: Vec<String> = route.domains.iter().map(|d| normalize_entry(d)).collect();
        domains.sort();
        domains.dedup();
        self.update(|table| {
            let remote = table
                .apps
                .get(app)
                .map_or_else(Arc::default, |old| Arc::clone(&old.remote));
            table.install(Arc::new(AppRoutes {
                app: Arc::from(app),
                domains,
                redirect_https: route.redirect_https,
                maintenance: route.maintenance,
                local,
                remote,
            }));
        });
    }

    /// Sets the other nodes' proxies that serve app `app`, replacing the ones
    /// it had. They take requests only while the app has no local instance,
    /// and only requests that did not come from another node already.
    ///
    /// The app's domains come from [`Router::set_app`]: until that is called
    /// the remote backends are kept but no host routes to them.
    pub fn set_remote(&self, app: &str, backends: Vec<Backend>) {
        let remote = Arc::new(self.pool(backends));
        self.update(|table| {
            let routes = match table.apps.get(app) {
                Some(old) => AppRoutes {
                    app: Arc::clone(&old.app),
                    domains: old.domains.clone(),
                    redirect_https: old.redirect_https,
                    maintenance: old.maintenance.clone(),
                    local: Arc::clone(&old.local),
                    remote,
                },
                None => AppRoutes {
                    app: Arc::from(app),
                    domains: Vec::new(),
                    redirect_https: false,
                    maintenance: None,
                    local: Arc::default(),
                    remote,
                },
            };
            table.replace(Arc::new(routes));
        });
    }

    /// Forgets an app, its local and its remote backends; its hosts answer
    /// 404 afterwards. To keep forwarding an app with no local instance left,
    /// call `set_app` with no backends instead.
    pub fn remove_app(&self, app: &str) {
        self.update(|table| {
            table.forget(app);
        });
    }

    /// The local instances `host` currently routes to (None: unknown host).
    pub fn backends_for(&self, host: &str) -> Option<Vec<Backend>> {
        let routes = self.lookup(&normalize(host), "/")?;
        Some(routes.local.backends())
    }

    /// The other nodes' proxies `host` falls back to (None: unknown host).
    pub fn remotes_for(&self, host: &str) -> Option<Vec<Backend>> {
        let routes = self.lookup(&normalize(host), "/")?;
        Some(routes.remote.backends())
    }

    /// Whether plain-HTTP requests for `host` are redirected to HTTPS (None: unknown host).
    pub fn redirects_https(&self, host: &str) -> Option<bool> {
        Some(self.lookup(&normalize(host), "/")?.redirect_https)
    }

    /// Requests backend `id` is serving right now: counted from the moment a
    /// request is routed to it until its response body has been completely
    /// sent to the client (or the client went away). An upgraded connection
    /// (a WebSocket) counts until it closes.
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

    /// The ACME HTTP-01 challenges the plain-HTTP listener answers.
    pub fn challenges(&self) -> &Challenges {
        &self.shared.challenges
    }

    /// The proxy's metrics; [`Metrics::render`] gives the Prometheus text.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The app a request for `host` (already normalized) and `target` (its
    /// path and query) goes to.
    pub(crate) fn lookup(&self, host: &str, target: &str) -> Option<Arc<AppRoutes>> {
        self.table().index.lookup(host, target).cloned()
    }

    /// Which app `host` and `path` route to (None: none).
    pub fn app_for(&self, host: &str, path: &str) -> Option<String> {
        Some(self.lookup(&normalize(host), path)?.app.to_string())
    }

    fn pool(&self, backends: Vec<Backend>) -> Pool {
        Pool::new(
            backends
                .into_iter()
                .map(|backend| Slot {
                    load: self.shared.loads.load_for(&backend.id),
                    backend: Arc::new(backend),
                })
                .collect(),
        )
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
            next.reindex();
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

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.table();
        let mut apps: Vec<&str> = table.apps.keys().map(String::as_str).collect();
        apps.sort_unstable();
        f.debug_struct("Router").field("apps", &apps).finish()
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
