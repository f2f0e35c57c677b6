//! App backups: what `[backup]` in `Reef.toml` asks for, what one backup
//! holds and where its parts are, and what the leader asks a node to do to
//! make or restore a part.
//!
//! A backup is made of parts, one per thing backed up: the app's
//! `${data_dir}` on each node that runs it. Each part is one object in the
//! backups store, encrypted on the node that made it to the cluster's
//! backup key (derived from the cluster key); only a holder of the cluster
//! key can open it again.

use crate::cron::{time_zone, Schedule};
use crate::envelope::{Message, MessageKind};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// The most backups kept of one app.
pub const MAX_KEEP: u32 = 1000;
/// The most restores one backup's record remembers.
const RESTORES_KEPT: usize = 20;

/// `[backup]` in `Reef.toml`, validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSpec {
    /// A cron expression ([`Schedule::parse`]); none: only `reef backup run`.
    pub schedule: Option<String>,
    /// The IANA time zone the schedule's wall times are read in.
    pub time_zone: String,
    /// How many backups to keep; older ones are deleted after a new one is made.
    pub keep: u32,
    /// Run in the release directory with the app's environment before the
    /// data directory is read (an SQLite `.backup` into `${data_dir}`, say).
    pub pre_backup: Option<String>,
}

impl BackupSpec {
    /// Checks the schedule, the time zone and `keep`, naming the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(schedule) = &self.schedule {
            Schedule::parse(schedule)
                .map_err(|e| ("backup.schedule".to_string(), e.to_string()))?;
        }
        time_zone(&self.time_zone).map_err(|e| ("backup.tz".to_string(), e))?;
        if self.keep == 0 || self.keep > MAX_KEEP {
            return Err((
                "backup.keep".to_string(),
                format!("keep 1 to {MAX_KEEP} backups, not {}", self.keep),
            ));
        }
        if let Some(hook) = &self.pre_backup {
            if hook.trim().is_empty() {
                return Err(("backup.pre_backup".into(), "is empty".into()));
            }
        }
        Ok(())
    }
}

/// What a part holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartKind {
    /// The app's `${data_dir}` on the part's node, as a tar.gz.
    Data,
    /// One database of the app's managed Postgres, as `pg_dump -Fc` writes it.
    Postgres { database: String },
}

impl PartKind {
    pub fn describe(&self) -> String {
        match self {
            PartKind::Data => "data directory".into(),
            PartKind::Postgres { database } => format!("database {database}"),
        }
    }
}

/// One part of a backup, stored as one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPart {
    pub kind: PartKind,
    /// Where it was made, and where it is restored.
    pub node: NodeId,
    /// Its name in the backups store.
    pub object: String,
    /// Of the stored (encrypted) bytes, hex.
    pub sha256: String,
    /// Stored bytes.
    pub size: u64,
    /// Bytes before compression and encryption.
    pub plain_size: u64,
}

/// Why a backup was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// Its schedule's tick (the backup's id is the tick).
    Schedule,
    /// `reef backup run`.
    Manual,
}

/// How far a backup got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupState {
    Running,
    Done,
    Failed { reason: String },
}

/// One restore of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRun {
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// None while it runs; then what it did, or why it failed.
    pub outcome: Option<Result<String, String>>,
    /// Who asked.
    pub by: String,
}

/// One backup of an app, in the backups bucket under `<app>.<id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub app: String,
    /// The time it was started (or its tick), in ms: unique per app, and
    /// sorting by it sorts by age.
    pub id: u64,
    pub trigger: Trigger,
    pub state: BackupState,
    pub parts: Vec<BackupPart>,
    pub started_ms: u64,
    pub finished_ms: Option<u64>,
    /// The release that was current when it was made.
    pub release: Option<u32>,
    pub restores: Vec<RestoreRun>,
}

impl BackupRecord {
    /// Remembers a restore, forgetting the oldest beyond a few.
    pub fn remember(&mut self, run: RestoreRun) {
        self.restores.push(run);
        let extra = self.restores.len().saturating_sub(RESTORES_KEPT);
        self.restores.drain(..extra);
    }

    /// Bytes stored for it.
    pub fn size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

impl Message for BackupRecord {
    const KIND: MessageKind = MessageKind::BackupRecord;
}

/// A backup's key in the backups bucket.
pub fn key(app: &str, id: u64) -> String {
    format!("{app}.{id:013}")
}

/// A part's object name in the backups store.
pub fn object_name(app: &str, id: u64, node: NodeId, kind: &PartKind) -> String {
    match kind {
        PartKind::Data => format!("{app}/{id:013}/{node}/data"),
        PartKind::Postgres { database } => format!("{app}/{id:013}/{node}/postgres-{database}"),
    }
}

/// The associated data a part's content key is sealed under, so a key
/// cannot be moved to another part.
pub fn part_context(object: &str) -> String {
    format!("reef-backup/{object}")
}

/// What the leader asks a node, on `reef.backup.<node>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupRequest {
    /// Make the app's data part: run `pre_backup` beside a running instance
    /// of it (if any runs here), pack the data directory, encrypt it to
    /// `recipient` (the cluster's backup key) and store it as `object`.
    Make {
        app: String,
        object: String,
        recipient: [u8; 32],
        pre_backup: Option<String>,
    },
    /// Put a data part back: the stored object must hash to `sha256`;
    /// `key` is its content key sealed to this node. The app's instances
    /// here step aside while the data directory is replaced, then start
    /// again.
    Restore {
        app: String,
        object: String,
        sha256: String,
        key: Vec<u8>,
    },
    /// Dump one database of the app's managed Postgres, which runs on this
    /// node (`version`, listening on `port`), encrypted to `recipient`,
    /// stored as `object`.
    MakeDatabase {
        app: String,
        database: String,
        version: u32,
        port: u16,
        object: String,
        recipient: [u8; 32],
    },
    /// Put a database back from its dump, in one transaction: the stored
    /// object must hash to `sha256`; `key` is its content key sealed to
    /// this node.
    RestoreDatabase {
        app: String,
        database: String,
        version: u32,
        port: u16,
        object: String,
        sha256: String,
        key: Vec<u8>,
    },
}

impl BackupRequest {
    /// The app and the object the request is about.
    pub fn target(&self) -> (&str, &str) {
        match self {
            BackupRequest::Make { app, object, .. }
            | BackupRequest::Restore { app, object, .. }
            | BackupRequest::MakeDatabase { app, object, .. }
            | BackupRequest::RestoreDatabase { app, object, .. } => (app, object),
        }
    }
}

impl Message for BackupRequest {
    const KIND: MessageKind = MessageKind::BackupRequest;
}

/// A node's answer to a [`BackupRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupAnswer {
    Made {
        sha256: String,
        size: u64,
        plain_size: u64,
        /// What `pre_backup` did, if it ran.
        hook: Option<String>,
    },
    Restored {
        /// Files put back.
        files: u64,
        /// Instances stopped and started again around it.
        instances: u32,
    },
    Failed {
        reason: String,
    },
    /// A database was put back from its dump.
    RestoredDatabase {
        database: String,
    },
}

impl Message for BackupAnswer {
    const KIND: MessageKind = MessageKind::BackupAnswer;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BackupSpec {
        BackupSpec {
            schedule: Some("0 3 * * *".into()),
            time_zone: "Europe/Berlin".into(),
            keep: 7,
            pre_backup: None,
        }
    }

    #[test]
    fn a_valid_spec_passes() {
        assert_eq!(spec().validate(), Ok(()));
        let manual = BackupSpec {
            schedule: None,
            ..spec()
        };
        assert_eq!(manual.validate(), Ok(()));
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = BackupSpec {
            schedule: Some("61 * * * *".into()),
            ..spec()
        };
        assert_eq!(bad.validate().unwrap_err().0, "backup.schedule");
        let bad = BackupSpec {
            time_zone: "Mars/Olympus".into(),
            ..spec()
        };
        assert_eq!(bad.validate().unwrap_err().0, "backup.tz");
        for keep in [0, MAX_KEEP + 1] {
            let bad = BackupSpec { keep, ..spec() };
            assert_eq!(bad.validate().unwrap_err().0, "backup.keep");
        }
        let bad = BackupSpec {
            pre_backup: Some("  ".into()),
            ..spec()
        };
        assert_eq!(bad.validate().unwrap_err().0, "backup.pre_backup");
    }

    #[test]
    fn keys_sort_by_age() {
        assert!(key("a", 999) < key("a", 1000));
        assert_eq!(key("shop", 1_765_000_000_000), "shop.1765000000000");
    }

    #[test]
    fn restores_are_bounded() {
        let mut record = BackupRecord {
            app: "a".into(),
            id: 1,
            trigger: Trigger::Manual,
            state: BackupState::Done,
            parts: vec![],
            started_ms: 1,
            finished_ms: Some(2),
            release: None,
            restores: vec![],
        };
        for i in 0..30 {
            record.remember(RestoreRun {
                started_ms: i,
                finished_ms: None,
                outcome: None,
                by: "x".into(),
            });
        }
        assert_eq!(record.restores.len(), RESTORES_KEPT);
        assert_eq!(record.restores[0].started_ms, 10);
    }
}
