//! `app.backup`, `app.restore` (the leader hands them to its backups task,
//! `drive/backups.rs`) and `app.backups` (a read, any coordinator).

use crate::api::{invalid, not_found};
use crate::drive::backups::{self, Work};
use crate::drive::Coordinator;
use crate::store::Store;
use reef_proto::api::{ApiError, ApiErrorKind, ApiResponse};
use reef_proto::backup::{self as proto, BackupRecord, BackupState, RestoreRun, Trigger};
use reef_proto::now_ms;

fn unavailable(message: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorKind::Unavailable, message)
}

async fn existing_app(store: &Store, app: &str) -> Result<(), ApiError> {
    reef_proto::manifest::validate_app_name(app).map_err(invalid)?;
    match store.apps.get(app).await? {
        Some(_) => Ok(()),
        None => Err(not_found(app)),
    }
}

impl Coordinator {
    fn backups_ready(&self) -> Result<tokio::sync::mpsc::Sender<Work>, ApiError> {
        if self.cluster_key.is_none() {
            return Err(unavailable(
                "backups need the cluster key, and this cluster's leader runs without one (--secrets-key)",
            ));
        }
        self.backups
            .clone()
            .ok_or_else(|| unavailable("the leader's backups task is not running yet: try again"))
    }

    /// Starts a backup of `app` now.
    pub(crate) async fn backup_app(&mut self, app: &str) -> Result<ApiResponse, ApiError> {
        existing_app(&self.store, app).await?;
        let work = self.backups_ready()?;
        let mut id = now_ms();
        while !backups::claim(&self.store, app, id, Trigger::Manual).await? {
            id += 1;
        }
        let queued = work.try_send(Work::Make {
            app: app.to_string(),
            id,
        });
        if queued.is_err() {
            let key = proto::key(app, id);
            let reason = "too many backups and restores are waiting: try again later".to_string();
            self.store
                .backups
                .modify(&key, |r| {
                    r.state = BackupState::Failed {
                        reason: reason.clone(),
                    };
                    r.finished_ms = Some(now_ms());
                    true
                })
                .await?;
            return Err(unavailable(reason));
        }
        Ok(ApiResponse::BackupStarted {
            app: app.to_string(),
            id,
            restore_started_ms: None,
        })
    }

    /// Starts a restore of `app` from backup `id` (its newest finished one
    /// when None).
    pub(crate) async fn restore_app(
        &mut self,
        app: &str,
        id: Option<u64>,
        by: &str,
    ) -> Result<ApiResponse, ApiError> {
        existing_app(&self.store, app).await?;
        let work = self.backups_ready()?;
        let records = backups::of_app(&self.store, app).await?;
        let record = match id {
            Some(id) => records.iter().find(|r| r.id == id).ok_or_else(|| {
                ApiError::new(
                    ApiErrorKind::NotFound,
                    format!("app {app} has no backup {id} (`reef backup list {app}`)"),
                )
            })?,
            None => records
                .iter()
                .find(|r| r.state == BackupState::Done)
                .ok_or_else(|| {
                    ApiError::new(
                        ApiErrorKind::NotFound,
                        format!("app {app} has no finished backup"),
                    )
                })?,
        };
        match &record.state {
            BackupState::Done => {}
            BackupState::Running => {
                return Err(invalid(format!(
                    "backup {} of {app} is still being made",
                    record.id
                )))
            }
            BackupState::Failed { reason } => {
                return Err(invalid(format!(
                    "backup {} of {app} failed ({reason}): there is nothing to restore",
                    record.id
                )))
            }
        }
        if record
            .restores
            .iter()
            .any(|r| r.outcome.is_none() && now_ms().saturating_sub(r.started_ms) < 3_600_000)
        {
            return Err(invalid(format!(
                "backup {} of {app} is being restored already",
                record.id
            )));
        }
        let id = record.id;
        let started_ms = now_ms();
        let run = RestoreRun {
            started_ms,
            finished_ms: None,
            outcome: None,
            by: by.to_string(),
        };
        self.store
            .backups
            .modify(&proto::key(app, id), |r| {
                r.remember(run.clone());
                true
            })
            .await?;
        work.try_send(Work::Restore {
            app: app.to_string(),
            id,
            started_ms,
        })
        .map_err(|_| unavailable("too many backups and restores are waiting: try again later"))?;
        Ok(ApiResponse::BackupStarted {
            app: app.to_string(),
            id,
            restore_started_ms: Some(started_ms),
        })
    }
}

/// `app.backups`: the app's backups, newest first.
pub(crate) async fn list(store: &Store, app: &str) -> Result<Vec<BackupRecord>, ApiError> {
    existing_app(store, app).await?;
    Ok(backups::of_app(store, app).await?)
}
