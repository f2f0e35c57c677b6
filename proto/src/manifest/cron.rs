//! `[[cron]]` tables: periodic commands that run with an app's release and
//! environment. Each becomes a periodic job named `<app>-<name>`,
//! registered, changed and removed with each deploy of the app.

use super::{invalid, validate_app_name, AppSpec, ManifestError};
use crate::cron::{time_zone, CronSpec, Overlap, Schedule, DEFAULT_CATCH_UP_MS};
use crate::job::JobSpec;
use serde::{Deserialize, Serialize};

/// A `[[cron]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CronTable {
    name: String,
    schedule: String,
    tz: Option<String>,
    overlap: Option<String>,
    command: String,
}

/// A validated `[[cron]]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCron {
    /// Unique in the app; the periodic job is `<app>-<name>`.
    pub name: String,
    pub schedule: String,
    pub time_zone: String,
    pub overlap: Overlap,
    /// A shell command, run in the release directory.
    pub command: String,
}

/// Checks every `[[cron]]` table of app `app`.
pub(super) fn validate(app: &str, tables: &[CronTable]) -> Result<Vec<AppCron>, ManifestError> {
    let mut out: Vec<AppCron> = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        let field = |name: &str| format!("cron[{i}].{name}");
        validate_app_name(&table.name).map_err(|e| invalid(&field("name"), e))?;
        if out.iter().any(|c| c.name == table.name) {
            return Err(invalid(
                &field("name"),
                format!("{} is listed twice", table.name),
            ));
        }
        let full = job_name(app, &table.name);
        if full.len() > 63 {
            return Err(invalid(
                &field("name"),
                format!("the periodic job {full} would be longer than 63 characters"),
            ));
        }
        Schedule::parse(&table.schedule).map_err(|e| invalid(&field("schedule"), e.to_string()))?;
        let zone = table.tz.clone().unwrap_or_else(|| "UTC".into());
        time_zone(&zone).map_err(|e| invalid(&field("tz"), e))?;
        let overlap = match &table.overlap {
            None => Overlap::Skip,
            Some(text) => Overlap::parse(text).map_err(|e| invalid(&field("overlap"), e))?,
        };
        if table.command.trim().is_empty() || table.command.contains('\0') {
            return Err(invalid(
                &field("command"),
                "must be a non-empty shell command",
            ));
        }
        out.push(AppCron {
            name: table.name.clone(),
            schedule: table.schedule.clone(),
            time_zone: zone,
            overlap,
            command: table.command.clone(),
        });
    }
    Ok(out)
}

/// The periodic job a `[[cron]]` table of `app` becomes.
pub fn job_name(app: &str, cron: &str) -> String {
    format!("{app}-{cron}")
}

impl AppSpec {
    /// The periodic jobs this app's `[[cron]]` tables become, owned by
    /// `owner`: each tick runs the command with `sh -c` in the app's
    /// release, with its environment, beside one of its healthy instances.
    pub fn cron_jobs(&self, owner: &str) -> Vec<CronSpec> {
        self.cron
            .iter()
            .map(|cron| CronSpec {
                name: job_name(&self.name, &cron.name),
                schedule: cron.schedule.clone(),
                time_zone: cron.time_zone.clone(),
                overlap: cron.overlap,
                catch_up_ms: DEFAULT_CATCH_UP_MS,
                job: JobSpec {
                    resources: self.resources,
                    constraints: self.constraints.clone(),
                    owner: owner.to_string(),
                    network: true,
                    app: Some(self.name.clone()),
                    ..JobSpec::new(vec!["sh".into(), "-c".into(), cron.command.clone()])
                },
            })
            .collect()
    }
}
