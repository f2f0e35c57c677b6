//! An app's `[[cron]]` tables against the periodic jobs on record: which a
//! deploy creates, changes and removes, and whether one of its names is
//! taken by a periodic job that is not the app's.

use reef_proto::cron::{CronRecord, CronSpec};

/// What a deploy of an app does to the periodic jobs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Sync {
    pub(crate) create: Vec<CronSpec>,
    /// A job of the app's whose table changed: its new spec (its runs stay).
    pub(crate) update: Vec<CronSpec>,
    /// The app's jobs whose tables are gone.
    pub(crate) remove: Vec<String>,
}

/// Whether `record` is one of `app`'s `[[cron]]` jobs.
pub(crate) fn belongs(record: &CronRecord, app: &str) -> bool {
    record.spec.job.app.as_deref() == Some(app)
}

/// The first of `wanted`'s names that a periodic job other than `app`'s holds.
pub(crate) fn taken<'a>(
    existing: &[CronRecord],
    app: &str,
    wanted: &'a [CronSpec],
) -> Option<&'a str> {
    wanted.iter().map(|spec| spec.name.as_str()).find(|name| {
        existing
            .iter()
            .any(|r| r.spec.name == *name && !belongs(r, app))
    })
}

/// What to write so that `app`'s periodic jobs are `wanted`.
pub(crate) fn sync(existing: &[CronRecord], app: &str, wanted: &[CronSpec]) -> Sync {
    let mut out = Sync::default();
    for spec in wanted {
        match existing.iter().find(|r| r.spec.name == spec.name) {
            None => out.create.push(spec.clone()),
            Some(record) if record.spec != *spec && belongs(record, app) => {
                out.update.push(spec.clone())
            }
            Some(_) => {}
        }
    }
    for record in existing.iter().filter(|r| belongs(r, app)) {
        if !wanted.iter().any(|spec| spec.name == record.spec.name) {
            out.remove.push(record.spec.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reef_proto::job::JobSpec;

    fn spec(name: &str, app: Option<&str>, schedule: &str) -> CronSpec {
        CronSpec {
            name: name.into(),
            schedule: schedule.into(),
            time_zone: "UTC".into(),
            overlap: Default::default(),
            catch_up_ms: 0,
            job: JobSpec {
                app: app.map(str::to_string),
                ..JobSpec::new(vec!["true".into()])
            },
        }
    }

    fn record(spec: CronSpec) -> CronRecord {
        CronRecord {
            spec,
            created_at_ms: 0,
            handled_ms: 0,
            recent: Vec::new(),
        }
    }

    #[test]
    fn a_deploy_creates_changes_and_removes_only_the_apps_own_jobs() {
        let existing = vec![
            record(spec("shop-same", Some("shop"), "* * * * *")),
            record(spec("shop-changed", Some("shop"), "* * * * *")),
            record(spec("shop-gone", Some("shop"), "* * * * *")),
            record(spec("other-job", Some("other"), "* * * * *")),
            record(spec("by-hand", None, "* * * * *")),
        ];
        let wanted = vec![
            spec("shop-same", Some("shop"), "* * * * *"),
            spec("shop-changed", Some("shop"), "*/5 * * * *"),
            spec("shop-new", Some("shop"), "* * * * *"),
        ];
        assert_eq!(taken(&existing, "shop", &wanted), None);
        let plan = sync(&existing, "shop", &wanted);
        assert_eq!(plan.create, vec![wanted[2].clone()]);
        assert_eq!(plan.update, vec![wanted[1].clone()]);
        assert_eq!(plan.remove, vec!["shop-gone".to_string()]);
        // No tables: every job of the app goes, nobody else's.
        let plan = sync(&existing, "shop", &[]);
        assert_eq!(plan.remove.len(), 3);
        assert!(plan.create.is_empty() && plan.update.is_empty());
    }

    #[test]
    fn a_name_held_by_a_job_that_is_not_the_apps_is_taken() {
        let existing = vec![
            record(spec("shop-report", None, "* * * * *")),
            record(spec("shop-sync", Some("shop-sync-app"), "* * * * *")),
        ];
        let wanted = vec![spec("shop-report", Some("shop"), "* * * * *")];
        assert_eq!(taken(&existing, "shop", &wanted), Some("shop-report"));
        let wanted = vec![spec("shop-sync", Some("shop"), "* * * * *")];
        assert_eq!(taken(&existing, "shop", &wanted), Some("shop-sync"));
    }
}
