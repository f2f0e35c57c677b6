//! The rest of an app's life after `deploy`: rolling back to an earlier
//! release (as a new release that copies it, so history only grows),
//! scaling, stopping, starting and destroying.

use crate::api::not_found;
use crate::drive::Coordinator;
use crate::plan::replacement;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::app::{AppDesired, AppRecord, Instance, Release};
use reef_proto::{now_ms, subjects};

impl Coordinator {
    async fn app_record(&self, app: &str) -> Result<AppRecord, ApiError> {
        Ok(self
            .store
            .apps
            .get(app)
            .await?
            .ok_or_else(|| not_found(app))?
            .0)
    }

    async fn release(&self, app: &str, version: u32) -> Result<Release, ApiError> {
        Ok(self
            .store
            .releases
            .get(&subjects::release_key(app, version))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ApiErrorKind::NotFound,
                    format!("{app} has no release {version}"),
                )
            })?
            .0)
    }

    /// Rolls out a copy of release `to` (default: the one before the current).
    pub(crate) async fn rollback(
        &mut self,
        app: &str,
        to: Option<u32>,
        caller: &str,
    ) -> Result<(Release, Vec<Instance>), ApiError> {
        let record = self.app_record(app).await?;
        let target = match to {
            Some(version) => version,
            None if record.version > 1 => record.version - 1,
            None => {
                return Err(ApiError::new(
                    ApiErrorKind::Invalid,
                    format!("{app} has no release before {}", record.version),
                ))
            }
        };
        if target == record.version {
            return Err(ApiError::new(
                ApiErrorKind::Invalid,
                format!("release {target} is already the current release of {app}: nothing to roll back"),
            ));
        }
        let old = self.release(app, target).await?;
        if self
            .store
            .artifacts
            .info(&old.artifact.digest)
            .await
            .is_err()
        {
            return Err(ApiError::new(
                ApiErrorKind::Invalid,
                format!("the artifact of release {target} is gone"),
            ));
        }
        self.ensure_secrets(&old.spec).await?;
        // The release's own `[[cron]]` tables come back with it.
        let crons = old.spec.cron_jobs(caller);
        self.check_app_crons(app, &crons).await?;
        let replicas = self.replicas_to_run(app, old.spec.replicas).await?;
        let live = self.live_instances(app);
        let mut plan = replacement::plan(&live, replicas);
        replacement::limit(&mut plan, old.spec.rolling.max_parallel);
        let nodes = self.place_replicas(&old.spec, &plan)?;
        let release = self
            .record_release(old.spec, old.artifact, Some(target), replicas)
            .await?;
        let instances = self.execute(&release, plan, nodes).await?;
        self.sync_app_crons(app, &crons).await?;
        Ok((release, instances))
    }

    /// Runs `replicas` instances of the current release, and records that as
    /// wanted (with `start`, also that the app should run).
    pub(crate) async fn scale(
        &mut self,
        app: &str,
        replicas: u32,
        start: bool,
    ) -> Result<(Release, Vec<Instance>), ApiError> {
        if !(1..=1000).contains(&replicas) {
            return Err(ApiError::new(
                ApiErrorKind::Invalid,
                "replicas must be between 1 and 1000",
            ));
        }
        let record = self.app_record(app).await?;
        if record.desired == AppDesired::Stopped && !start {
            return Err(ApiError::new(
                ApiErrorKind::Invalid,
                format!("{app} is stopped; `reef start {app}` first"),
            ));
        }
        let release = self.release(app, record.version).await?;
        self.ensure_secrets(&release.spec).await?;
        let live = self.live_instances(app);
        let plan = replacement::plan_scale(&live, record.version, replicas);
        let nodes = self.place_replicas(&release.spec, &plan)?;
        self.store
            .apps
            .modify(app, |r| {
                r.replicas = replicas;
                r.desired = AppDesired::Running;
                r.updated_at_ms = now_ms();
                true
            })
            .await?;
        let instances = self.execute(&release, plan, nodes).await?;
        Ok((release, instances))
    }

    pub(crate) async fn start_app(
        &mut self,
        app: &str,
    ) -> Result<(Release, Vec<Instance>), ApiError> {
        let record = self.app_record(app).await?;
        self.scale(app, record.replicas, true).await
    }

    /// Drains and stops every instance; with `destroy`, also forgets the app
    /// and its releases (artifacts stay in the store, shared by digest).
    pub(crate) async fn stop_app(
        &mut self,
        app: &str,
        destroy: bool,
    ) -> Result<Vec<Instance>, ApiError> {
        self.app_record(app).await?;
        self.store
            .apps
            .modify(app, |r| {
                r.desired = AppDesired::Stopped;
                r.updated_at_ms = now_ms();
                true
            })
            .await?;
        let stopping: Vec<Instance> = self.live_instances(app).into_iter().cloned().collect();
        tracing::info!(%app, instances = stopping.len(), destroy, "stopping app");
        for instance in &stopping {
            self.stop_instance(instance.id, destroy).await?;
        }
        if destroy {
            let releases: Vec<Release> = self.store.releases.all().await?;
            for release in releases.iter().filter(|r| r.app == app) {
                let key = subjects::release_key(app, release.version);
                self.store.releases.purge(&key).await?;
            }
            self.store.apps.purge(app).await?;
            self.retire_services(app, false).await?;
            self.revoke_app_credential(app).await?;
            self.remove_secrets_of(app).await?;
            self.sync_app_crons(app, &[]).await?;
            self.routes_forget_app(app);
            tracing::info!(%app, "app destroyed");
        }
        Ok(stopping)
    }

    /// Destroys `app` like [`Coordinator::stop_app`]; its services' data
    /// is removed on their nodes with `delete_data`, else kept there.
    pub(crate) async fn destroy_app(
        &mut self,
        app: &str,
        delete_data: bool,
    ) -> Result<Vec<Instance>, ApiError> {
        let stopping = match self.stop_app(app, true).await {
            Ok(stopping) => stopping,
            // An app destroyed earlier may have left its services' data.
            Err(e) if e.kind == ApiErrorKind::NotFound && delete_data => {
                if !self.retire_services(app, true).await? {
                    return Err(e);
                }
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        if delete_data {
            self.retire_services(app, true).await?;
        }
        Ok(stopping)
    }
}
