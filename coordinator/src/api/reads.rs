//! Read-only verbs: app status, the apps, an app's releases.

use super::not_found;
use crate::drive::Coordinator;
use reef_proto::api::{ApiError, ApiErrorKind, AppStatus};
use reef_proto::app::{Instance, Release};
use reef_proto::subjects;

impl Coordinator {
    pub(crate) async fn app_status(&self, name: &str) -> Result<AppStatus, ApiError> {
        let (record, _) = self
            .store
            .apps
            .get(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let (release, _) = self
            .store
            .releases
            .get(&subjects::release_key(name, record.version))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ApiErrorKind::Internal,
                    format!("release {} of {name} is missing", record.version),
                )
            })?;
        let mut instances: Vec<Instance> = self
            .store
            .instances
            .all()
            .await?
            .into_iter()
            .filter(|i| i.app == name && !i.state.is_terminal())
            .collect();
        instances.sort_by_key(|i| i.id);
        Ok(AppStatus {
            record,
            release,
            instances,
        })
    }

    pub(crate) async fn list_apps(&self) -> Result<Vec<AppStatus>, ApiError> {
        let mut records = self.store.apps.all().await?;
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            out.push(self.app_status(&record.name).await?);
        }
        Ok(out)
    }

    pub(crate) async fn list_releases(&self, name: &str) -> Result<Vec<Release>, ApiError> {
        self.store
            .apps
            .get(name)
            .await?
            .ok_or_else(|| not_found(name))?;
        let mut releases: Vec<Release> = self
            .store
            .releases
            .all()
            .await?
            .into_iter()
            .filter(|r| r.app == name)
            .collect();
        releases.sort_by_key(|r| std::cmp::Reverse(r.version));
        Ok(releases)
    }
}
