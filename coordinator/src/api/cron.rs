//! The periodic jobs' verbs: `cron.add` and `cron.remove` on the leader
//! (`crate::drive::cron`), `cron.list` and `cron.history` on the read path,
//! from KV. A submitter sees and removes only its own.

use crate::drive::cron::next_tick;
use crate::store::Store;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::cron::{CronRecord, CronStatus, RunStatus, HISTORY};
use reef_proto::roles::Role;

/// Whether `caller` may see or remove `record`.
pub(crate) fn may_see(role: Role, caller: &str, record: &CronRecord) -> Result<(), ApiError> {
    if role != Role::Submitter || record.spec.job.owner == caller {
        return Ok(());
    }
    Err(ApiError::new(
        ApiErrorKind::Forbidden,
        format!(
            "periodic job {} is not {caller}'s: a submitter sees and removes only its own",
            record.spec.name
        ),
    ))
}

fn status(record: CronRecord) -> CronStatus {
    let next_ms = record.spec.parsed().ok().and_then(|(schedule, tz)| {
        next_tick(&schedule, &tz, record.handled_ms.max(reef_proto::now_ms()))
    });
    CronStatus { record, next_ms }
}

/// Every periodic job `caller` may see, by name.
pub(crate) async fn list(
    store: &Store,
    role: Role,
    caller: &str,
) -> Result<Vec<CronStatus>, ApiError> {
    let mut records = store.crons.all().await?;
    records.retain(|record| may_see(role, caller, record).is_ok());
    records.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    Ok(records.into_iter().map(status).collect())
}

/// A periodic job's latest runs, newest first, each with its job's state
/// while the job is on record.
pub(crate) async fn history(
    store: &Store,
    name: &str,
    limit: u32,
    role: Role,
    caller: &str,
) -> Result<Vec<RunStatus>, ApiError> {
    if limit == 0 || limit as usize > HISTORY {
        return Err(super::invalid(format!(
            "limit must be between 1 and {HISTORY}"
        )));
    }
    let Some((record, _)) = store.crons.get(name).await? else {
        return Err(ApiError::new(
            ApiErrorKind::NotFound,
            format!("no periodic job {name}"),
        ));
    };
    may_see(role, caller, &record)?;
    let mut runs = Vec::new();
    for run in record.recent.into_iter().take(limit as usize) {
        let job = match run.job() {
            Some(id) => store
                .jobs
                .get(&id.to_string())
                .await?
                .map(|(job, _)| job.state),
            None => None,
        };
        runs.push(RunStatus { run, job });
    }
    Ok(runs)
}
