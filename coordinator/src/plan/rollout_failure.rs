//! How a rolling update reacts to a failed replica, as a pure function of
//! the app record (read fresh) and what failed: with `auto_revert` (a
//! `revert_to` release is set) the app goes back to that release; without
//! it, a rollout with replicas still on an older release halts; a release
//! that never had every replica healthy at once (not proven) failed its
//! deploy and halts too, so the reconciler does not start it again; a
//! proven release that fails later is the reconciler's to restart.
//!
//! Whether a rollout is complete (every live replica on the record's
//! release and healthy) is decided here too. `drive/rolling_update.rs`
//! reads, decides, and writes the record with compare-and-set on the
//! revision it decided on, deciding again on a fresher read if it lost.

use reef_proto::app::{AppRecord, Instance, InstanceState};

/// What a failed replica of release `version` does to its app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// Go back to release `to`.
    Revert { to: u32, failure: String },
    /// Stop rolling until the next deploy.
    Halt { failure: String },
}

impl Reaction {
    /// The record with the reaction applied.
    pub fn applied_to(&self, record: &AppRecord) -> AppRecord {
        let mut next = record.clone();
        match self {
            Reaction::Revert { to, failure } => {
                next.version = *to;
                next.revert_to = None;
                next.rollout_failure = Some(failure.clone());
            }
            Reaction::Halt { failure } => {
                next.halted = true;
                next.rollout_failure = Some(failure.clone());
            }
        }
        next
    }

    pub fn failure(&self) -> &str {
        match self {
            Reaction::Revert { failure, .. } | Reaction::Halt { failure } => failure,
        }
    }
}

/// The reaction of `record` to a replica of release `version` that failed
/// for `reason`, `others_older` telling whether live replicas of the app
/// run another release; None when the failure changes nothing (another
/// release is current, a failure is already recorded, or a proven release
/// failed after the fact).
pub fn react(
    record: &AppRecord,
    version: u32,
    reason: &str,
    others_older: bool,
) -> Option<Reaction> {
    if record.version != version || record.rollout_failure.is_some() {
        return None;
    }
    match record.revert_to {
        Some(previous) => Some(Reaction::Revert {
            to: previous,
            failure: format!("release {version} failed ({reason}); reverted to release {previous}"),
        }),
        None if others_older => Some(Reaction::Halt {
            failure: format!("release {version} failed ({reason}); rollout halted"),
        }),
        None if record.proven < version => Some(Reaction::Halt {
            failure: format!("release {version} failed ({reason})"),
        }),
        None => None,
    }
}

/// Whether the app's rollout is over: at least its replicas live, every
/// one on the record's release and healthy.
pub fn settled(record: &AppRecord, live: &[&Instance]) -> bool {
    live.len() as u32 >= record.replicas
        && live
            .iter()
            .all(|i| i.version == record.version && i.state == InstanceState::Healthy)
}

#[cfg(test)]
#[path = "rollout_failure_tests.rs"]
mod tests;
