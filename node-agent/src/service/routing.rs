//! What the node proxy routes for each app, from two sources that must not
//! clobber each other: this node's healthy instances (kept by the instance
//! runners) and the other nodes' instances (from the cluster's routes
//! bucket, kept by the routes watcher). Both update one per-app state under
//! one lock, and every change republishes the whole app to the proxy.
//!
//! The proxy prefers local instances and forwards to other nodes only when
//! it has none, so an app keeps being served here while its last local
//! instance drains, provided the cluster's routes are known by then: the
//! runner reads them afresh before it takes that instance out (see
//! `routes::refresh`).

use reef_proto::app_routes::AppRoutes;
use reef_proto::maintenance::RETRY_AFTER_SECS;
use reef_proto::{InstanceId, NodeId};
use reef_proxy::{Backend, MaintenancePage, Router};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The routing of every app this node knows of.
#[derive(Default)]
pub(crate) struct Routing {
    apps: Mutex<HashMap<String, AppRouting>>,
    /// The routes bucket, once the watcher has opened it.
    pub bucket: OnceLock<async_nats::jetstream::kv::Store>,
}

/// How the proxy should route one app.
#[derive(Default)]
struct AppRouting {
    /// The domains of this node's latest instance of the app; None when it
    /// never ran here, or was destroyed.
    local_domains: Option<Vec<String>>,
    /// Healthy local instances.
    healthy: BTreeMap<InstanceId, SocketAddr>,
    /// The local release asks plain HTTP to be redirected to HTTPS.
    redirect_https: bool,
    /// What the routes bucket says; None when it has no entry.
    cluster: Option<ClusterRoutes>,
    /// The revision of the last routes entry applied (put or delete), so an
    /// older entry never replaces a newer one.
    revision: u64,
}

/// The app as the routes bucket lists it.
struct ClusterRoutes {
    domains: Vec<String>,
    /// The app's current release redirects plain HTTP to HTTPS.
    https_redirect: bool,
    /// Instances on other nodes, reached through their nodes' proxies.
    remote: Vec<Backend>,
    /// The app is in maintenance: this node answers with the page, whether
    /// it runs an instance or not.
    maintenance: Option<Arc<MaintenancePage>>,
}

impl Routing {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, AppRouting>> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many apps have a healthy local instance now.
    pub(crate) fn apps_served_locally(&self) -> usize {
        self.lock()
            .values()
            .filter(|a| !a.healthy.is_empty())
            .count()
    }

    /// Routes `app`'s domains to local `instance` on `port` too, and, in the
    /// same atomic switch, no longer to `replaces`: no request goes to the
    /// old instance once the new one has any.
    pub(crate) fn add(
        &self,
        router: &Router,
        app: &str,
        domains: &[String],
        instance: InstanceId,
        port: u16,
        replaces: Option<InstanceId>,
    ) {
        let mut apps = self.lock();
        let entry = apps.entry(app.to_string()).or_default();
        entry.local_domains = Some(domains.to_vec());
        entry
            .healthy
            .insert(instance, SocketAddr::from(([127, 0, 0, 1], port)));
        if let Some(old) = replaces {
            entry.healthy.remove(&old);
        }
        entry.publish(router, app);
    }

    /// Whether plain HTTP for `app` is redirected to HTTPS (as its local
    /// release asks); applied with the next change of its routes.
    pub(crate) fn set_redirect(&self, app: &str, redirect_https: bool) {
        self.lock()
            .entry(app.to_string())
            .or_default()
            .redirect_https = redirect_https;
    }

    /// Takes local `instance` out of `app`'s routes.
    pub(crate) fn remove(&self, router: &Router, app: &str, instance: InstanceId) {
        let mut apps = self.lock();
        if let Some(entry) = apps.get_mut(app) {
            if entry.healthy.remove(&instance).is_some() {
                entry.publish(router, app);
            }
        }
    }

    /// Whether `instance` is the only healthy local instance of `app`.
    pub(crate) fn is_last_local(&self, app: &str, instance: InstanceId) -> bool {
        self.lock()
            .get(app)
            .is_some_and(|entry| entry.healthy.len() == 1 && entry.healthy.contains_key(&instance))
    }

    /// This node's part of a destroyed app is gone: its hosts route only
    /// where the routes bucket says (nowhere once the coordinator removed
    /// the app, so they answer 404, not 503).
    pub(crate) fn forget_local(&self, router: &Router, app: &str) {
        let mut apps = self.lock();
        if let Some(entry) = apps.get_mut(app) {
            entry.local_domains = None;
            entry.healthy.clear();
            entry.publish(router, app);
        }
    }

    /// Applies the routes bucket's entry for `app` at `revision` (None: the
    /// key was deleted) as seen by node `me`, unless a newer one was applied
    /// already. False if it was older.
    pub(crate) fn apply_cluster(
        &self,
        router: &Router,
        me: NodeId,
        app: &str,
        revision: u64,
        routes: Option<AppRoutes>,
    ) -> bool {
        let mut apps = self.lock();
        let entry = apps.entry(app.to_string()).or_default();
        if revision <= entry.revision {
            return false;
        }
        entry.revision = revision;
        entry.cluster = routes.map(|routes| ClusterRoutes {
            remote: routes
                .elsewhere(me)
                .map(|b| {
                    Backend::new(b.instance.to_string(), b.addr)
                        .with_tls_name(reef_proto::node::peer_name(b.node))
                })
                .collect(),
            domains: routes.domains,
            https_redirect: routes.https_redirect,
            maintenance: routes.maintenance.map(|page| {
                Arc::new(MaintenancePage {
                    content_type: page.content_type,
                    body: page.body.into(),
                    retry_after_secs: RETRY_AFTER_SECS,
                })
            }),
        });
        entry.publish(router, app);
        true
    }
}

impl AppRouting {
    /// Hands the app's whole routing to the proxy: the other nodes first,
    /// then the local instances (each call keeps what the other set), so
    /// that at no moment does the app have neither when it should have one.
    fn publish(&self, router: &Router, app: &str) {
        if self.local_domains.is_none() && self.cluster.is_none() {
            router.remove_app(app);
            return;
        }
        let mut domains: BTreeSet<String> = BTreeSet::new();
        domains.extend(self.local_domains.iter().flatten().cloned());
        if let Some(cluster) = &self.cluster {
            domains.extend(cluster.domains.iter().cloned());
        }
        let domains: Vec<String> = domains.into_iter().collect();
        let remote = self
            .cluster
            .as_ref()
            .map(|c| c.remote.clone())
            .unwrap_or_default();
        router.set_remote(app, remote);
        let local: Vec<Backend> = self
            .healthy
            .iter()
            .map(|(id, addr)| Backend::new(id.to_string(), *addr))
            .collect();
        // Local instances follow their own release; a node that only
        // forwards follows the cluster's word, so the redirect cannot be
        // skipped by entering through a node without an instance.
        let redirect_https = match &self.cluster {
            Some(cluster) if local.is_empty() => cluster.https_redirect,
            _ => self.redirect_https,
        };
        router.set_app_with(
            app,
            reef_proxy::AppRoute {
                domains,
                backends: local,
                redirect_https,
                maintenance: self.cluster.as_ref().and_then(|c| c.maintenance.clone()),
            },
        );
    }
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
