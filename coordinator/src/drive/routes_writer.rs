//! The routes bucket: for every app, its healthy instances and the address
//! of their node's proxy, so any node can forward the app's requests to a
//! node that runs it. The leader is the only writer.
//!
//! Every change that can move an instance in or out of the routes (an
//! instance event, a stop the coordinator sends, a lost node, a node whose
//! proxy address changed) ends in [`Coordinator::sync_routes`], which
//! recomputes the app's entry from the in-memory view and writes it only if
//! it differs from what was last written. An app with no healthy instance
//! has no key. An instance leaves the routes as soon as the coordinator asks
//! it to stop, before its node acts on the stop, so that every other node
//! can stop forwarding to it while it drains. A term as leader starts by
//! rewriting the whole bucket from the view ([`Coordinator::rebuild_routes`]).

use crate::drive::Coordinator;
use crate::error::CoordinatorError;
use crate::error::Report;
use crate::plan::route_table::{build, ReleaseRouting};
use reef_proto::app::{Instance, InstanceState};
use reef_proto::app_routes::AppRoutes;
use reef_proto::maintenance::MaintenancePage;
use reef_proto::{subjects, InstanceId, NodeId};
use std::collections::{BTreeSet, HashSet};

impl Coordinator {
    /// Brings `app`'s key in the routes bucket in line with the view. A
    /// failed write is logged and retried on the next tick.
    pub(crate) async fn sync_routes(&mut self, app: &str) {
        let result = match self.routes_of(app).await {
            Ok(routes) => self.write_routes(app, routes).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.routes.dirty.remove(app);
            }
            Err(e) => {
                tracing::warn!(%app, error = %Report(&e), "could not update the app's routes; will retry");
                self.routes.dirty.insert(app.to_string());
            }
        }
    }

    /// Takes `instance` out of the routes now: the coordinator is about to
    /// ask its node to stop it.
    pub(crate) async fn unroute(&mut self, instance: InstanceId) {
        let Some(app) = self.cluster.instance(instance).map(|i| i.app.clone()) else {
            return;
        };
        if self.routes.stopping.insert(instance) {
            self.sync_routes(&app).await;
        }
    }

    /// The instances this coordinator asked to stop that have not ended yet.
    pub(crate) fn stopping(&self) -> &HashSet<InstanceId> {
        &self.routes.stopping
    }

    /// Forgets what was kept about an instance that ended.
    pub(crate) fn routes_forget_instance(&mut self, instance: InstanceId) {
        self.routes.stopping.remove(&instance);
    }

    /// Forgets a destroyed app's cached release routing.
    pub(crate) fn routes_forget_app(&mut self, app: &str) {
        self.routes.releases.retain(|(name, _), _| name != app);
        self.routes.maintenance.remove(app);
    }

    /// Re-syncs every app with an instance on `node` (its proxy address changed).
    pub(crate) async fn sync_routes_of_node(&mut self, node: NodeId) {
        let apps: BTreeSet<String> = self
            .cluster
            .instances()
            .filter(|i| i.node == node)
            .map(|i| i.app.clone())
            .collect();
        for app in apps {
            self.sync_routes(&app).await;
        }
    }

    /// Retries the apps whose routes could not be written.
    pub(crate) async fn retry_routes(&mut self) {
        if self.routes.rebuild {
            self.rebuild_routes().await;
            return;
        }
        for app in std::mem::take(&mut self.routes.dirty) {
            self.sync_routes(&app).await;
        }
    }

    /// Rewrites the whole bucket from the view: what a previous leader wrote
    /// may be stale. Keys of apps with no healthy instance are deleted. On
    /// failure, tried again on the next tick.
    pub(crate) async fn rebuild_routes(&mut self) {
        match self.try_rebuild_routes().await {
            Ok(()) => {
                self.routes.rebuild = false;
                self.routes.dirty.clear();
            }
            Err(e) => {
                tracing::warn!(error = %Report(&e), "could not rebuild the routes; will retry");
                self.routes.rebuild = true;
            }
        }
    }

    async fn try_rebuild_routes(&mut self) -> Result<(), CoordinatorError> {
        self.routes.written.clear();
        self.routes.maintenance = self
            .store
            .apps
            .all()
            .await?
            .into_iter()
            .filter_map(|record| Some((record.name, record.maintenance?.page)))
            .collect();
        let stored: BTreeSet<String> = self.store.routes.keys().await?.into_iter().collect();
        let mut apps: BTreeSet<String> = self.cluster.instances().map(|i| i.app.clone()).collect();
        apps.extend(stored.iter().cloned());
        for app in &apps {
            let routes = self.routes_of(app).await?;
            if routes.is_none() && !stored.contains(app) {
                continue;
            }
            self.put_routes(app, routes).await?;
        }
        tracing::info!(apps = self.routes.written.len(), "routes rebuilt");
        Ok(())
    }

    /// What `app`'s key should hold now.
    async fn routes_of(&mut self, app: &str) -> Result<Option<AppRoutes>, CoordinatorError> {
        let instances: Vec<Instance> = self
            .cluster
            .instances()
            .filter(|i| i.app == app && i.state == InstanceState::Healthy)
            .cloned()
            .collect();
        let Some(version) = instances.iter().map(|i| i.version).max() else {
            return Ok(None);
        };
        let release = self.release_routing(app, version).await?;
        let cluster = &self.cluster;
        let routes = build(app, release, &instances, &self.routes.stopping, |node| {
            cluster.node(node).and_then(|n| n.record.proxy_addr)
        });
        Ok(routes.map(|routes| AppRoutes {
            maintenance: self.routes.maintenance.get(app).cloned(),
            ..routes
        }))
    }

    /// Puts `app` in maintenance with `page`, or takes it out (None), in
    /// its routes now.
    pub(crate) async fn route_maintenance(&mut self, app: &str, page: Option<MaintenancePage>) {
        match page {
            Some(page) => self.routes.maintenance.insert(app.to_string(), page),
            None => self.routes.maintenance.remove(app),
        };
        self.sync_routes(app).await;
    }

    /// What release `version` of `app` says about routing (no domains if it is gone).
    pub(crate) async fn release_routing(
        &mut self,
        app: &str,
        version: u32,
    ) -> Result<ReleaseRouting, CoordinatorError> {
        let key = (app.to_string(), version);
        if let Some(routing) = self.routes.releases.get(&key) {
            return Ok(routing.clone());
        }
        let release = subjects::release_key(app, version);
        let Some((release, _)) = self.store.releases.get(&release).await? else {
            return Ok(ReleaseRouting::default());
        };
        let routing = ReleaseRouting {
            domains: release.spec.domains,
            https_redirect: release.spec.https_redirect,
        };
        self.routes.releases.insert(key, routing.clone());
        Ok(routing)
    }

    /// Writes (or deletes) `app`'s key unless it already holds `routes`.
    async fn write_routes(
        &mut self,
        app: &str,
        routes: Option<AppRoutes>,
    ) -> Result<(), CoordinatorError> {
        if self.routes.written.get(app) == routes.as_ref() {
            return Ok(());
        }
        self.put_routes(app, routes).await
    }

    async fn put_routes(
        &mut self,
        app: &str,
        routes: Option<AppRoutes>,
    ) -> Result<(), CoordinatorError> {
        match routes {
            Some(routes) => {
                self.store.routes.put(app, &routes).await?;
                tracing::debug!(%app, backends = routes.backends.len(), "routes updated");
                self.routes.written.insert(app.to_string(), routes);
            }
            None => {
                self.store.routes.delete(app).await?;
                tracing::debug!(%app, "routes removed: no healthy instance");
                self.routes.written.remove(app);
            }
        }
        Ok(())
    }
}
