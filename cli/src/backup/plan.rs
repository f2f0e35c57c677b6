//! What a restore takes from a backup, decided from the bucket and key
//! alone. A backup holds every bucket, but a cluster restored into (a new
//! one, or the same one after its state was lost) has machines, users and
//! keys of its own: what belongs to the old cluster's machines and
//! credentials (nodes, jobs and their allocations, instances, members,
//! tokens, the leader's lease, the servers, routes, ACME state) is left out;
//! what describes the apps (apps, releases, secrets, certificates) and the
//! periodic jobs comes back, secrets and certificate keys encrypted again
//! with the target's key.

use reef_proto::subjects;

/// What a restore does with one entry of the backup.
#[derive(Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Written as it is.
    Write,
    /// A secret of `app`, encrypted again under its context.
    Secret { app: String, key: String },
    /// A certificate, its key encrypted again and its copies for the old
    /// nodes dropped (the leader seals it to the new ones).
    Certificate,
    /// Left out, with why.
    Skip(&'static str),
}

/// The buckets a restore writes, in the order it writes them: the apps
/// last, so that when the leader sees an app, all it needs is there.
pub const WRITTEN: [&str; 5] = [
    subjects::RELEASES_BUCKET,
    subjects::SECRETS_BUCKET,
    subjects::CERTS_BUCKET,
    subjects::CRON_BUCKET,
    subjects::APPS_BUCKET,
];

pub fn disposition(bucket: &str, key: &str) -> Disposition {
    match bucket {
        subjects::APPS_BUCKET | subjects::RELEASES_BUCKET | subjects::CRON_BUCKET => {
            Disposition::Write
        }
        subjects::CRON_TICKS_BUCKET => Disposition::Skip("claims on ticks the old cluster handled"),
        subjects::SECRETS_BUCKET => match key.split_once('.') {
            Some((app, name)) if !app.is_empty() && !name.is_empty() => Disposition::Secret {
                app: app.to_string(),
                key: name.to_string(),
            },
            _ => Disposition::Skip("not a secret's key"),
        },
        subjects::CERTS_BUCKET if key.starts_with('_') => {
            Disposition::Skip("ACME accounts and attempts are made again")
        }
        subjects::CERTS_BUCKET => Disposition::Certificate,
        subjects::JOBS_BUCKET | subjects::ALLOCS_BUCKET => {
            Disposition::Skip("jobs ran on the old cluster's machines")
        }
        subjects::INSTANCES_BUCKET | subjects::ROUTES_BUCKET => {
            Disposition::Skip("instances are started again by the leader")
        }
        subjects::NODES_BUCKET | subjects::SERVERS_BUCKET => {
            Disposition::Skip("machines join the cluster they run in")
        }
        subjects::BACKUPS_BUCKET => {
            Disposition::Skip("app backups stay in the cluster that made them")
        }
        subjects::MEMBERS_BUCKET | subjects::TOKENS_BUCKET => {
            Disposition::Skip("credentials belong to the cluster that issued them")
        }
        _ => Disposition::Skip("the cluster makes it again"),
    }
}

/// The backup's apps that already exist where it is restored: a restore
/// refuses to overwrite them.
pub fn conflicts(restored: &[String], existing: &[String]) -> Vec<String> {
    let mut both: Vec<String> = restored
        .iter()
        .filter(|app| existing.contains(app))
        .cloned()
        .collect();
    both.sort();
    both.dedup();
    both
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_come_back_and_what_belongs_to_old_machines_does_not() {
        assert_eq!(disposition("reef-apps", "web"), Disposition::Write);
        assert_eq!(disposition("reef-releases", "web.3"), Disposition::Write);
        assert_eq!(
            disposition("reef-secrets", "web.DATABASE_URL"),
            Disposition::Secret {
                app: "web".into(),
                key: "DATABASE_URL".into()
            }
        );
        assert!(matches!(
            disposition("reef-secrets", "nodot"),
            Disposition::Skip(_)
        ));
        assert_eq!(
            disposition("reef-certs", "example.com"),
            Disposition::Certificate
        );
        assert!(matches!(
            disposition("reef-certs", "_acme-account.0123"),
            Disposition::Skip(_)
        ));
        for bucket in [
            "reef-jobs",
            "reef-allocs",
            "reef-instances",
            "reef-routes",
            "reef-nodes",
            "reef-servers",
            "reef-members",
            "reef-tokens",
            "reef-leader",
            "reef-challenges",
            "reef-cron-ticks",
            "something-else",
        ] {
            assert!(
                matches!(disposition(bucket, "k"), Disposition::Skip(_)),
                "{bucket}"
            );
        }
        // Every bucket a restore writes is one it keeps entries of.
        for bucket in WRITTEN {
            assert!(!matches!(disposition(bucket, "a.b"), Disposition::Skip(_)));
        }
        assert_eq!(WRITTEN.last(), Some(&"reef-apps"));
    }

    #[test]
    fn periodic_jobs_come_back() {
        assert_eq!(disposition("reef-cron", "nightly"), Disposition::Write);
    }

    #[test]
    fn existing_apps_are_conflicts() {
        let restored = vec!["web".to_string(), "api".into(), "web".into()];
        assert_eq!(
            conflicts(&restored, &["api".into(), "other".into()]),
            ["api"]
        );
        assert!(conflicts(&restored, &[]).is_empty());
    }
}
