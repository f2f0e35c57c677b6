//! Which of an app's backups to delete once a new one is made.

use reef_proto::backup::{BackupRecord, BackupState};

/// From an app's backups, newest first: the finished ones beyond the newest
/// `keep`, and the failed ones older than the oldest finished one kept.
/// Backups still running are never deleted.
pub(crate) fn to_delete(newest_first: &[BackupRecord], keep: usize) -> Vec<&BackupRecord> {
    let done: Vec<&BackupRecord> = newest_first
        .iter()
        .filter(|r| r.state == BackupState::Done)
        .collect();
    let Some(oldest_kept) = done
        .get(keep.saturating_sub(1))
        .or(done.last())
        .map(|r| r.id)
    else {
        return Vec::new();
    };
    newest_first
        .iter()
        .filter(|r| match r.state {
            BackupState::Done => r.id < oldest_kept,
            BackupState::Failed { .. } => r.id < oldest_kept,
            BackupState::Running => false,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reef_proto::backup::Trigger;

    fn record(id: u64, state: BackupState) -> BackupRecord {
        BackupRecord {
            app: "a".into(),
            id,
            trigger: Trigger::Schedule,
            state,
            parts: vec![],
            started_ms: id,
            finished_ms: None,
            release: None,
            restores: vec![],
        }
    }

    fn failed(id: u64) -> BackupRecord {
        record(id, BackupState::Failed { reason: "x".into() })
    }

    fn ids(records: Vec<&BackupRecord>) -> Vec<u64> {
        records.iter().map(|r| r.id).collect()
    }

    #[test]
    fn the_newest_finished_ones_are_kept() {
        let records: Vec<_> = (1..=5)
            .rev()
            .map(|id| record(id, BackupState::Done))
            .collect();
        assert_eq!(ids(to_delete(&records, 3)), vec![2, 1]);
        assert_eq!(ids(to_delete(&records, 5)), Vec::<u64>::new());
        assert_eq!(ids(to_delete(&records, 9)), Vec::<u64>::new());
    }

    #[test]
    fn failed_ones_go_once_older_than_what_is_kept_and_running_ones_stay() {
        let records = vec![
            failed(9),
            record(8, BackupState::Running),
            record(7, BackupState::Done),
            failed(6),
            record(5, BackupState::Done),
            failed(4),
            record(3, BackupState::Running),
        ];
        assert_eq!(ids(to_delete(&records, 2)), vec![4]);
        assert_eq!(ids(to_delete(&records, 1)), vec![6, 5, 4]);
    }

    #[test]
    fn with_nothing_finished_nothing_is_deleted() {
        let records = vec![failed(3), failed(2), record(1, BackupState::Running)];
        assert!(to_delete(&records, 1).is_empty());
    }
}
