//! The cluster's events, as `reef events` shows them: a node came up, went
//! down or was drained; a deploy started, became healthy, failed or was
//! reverted; an instance crashed; a certificate was issued or its order
//! failed; a periodic job's run failed. The leader writes them to the
//! cluster events stream, one subject per kind
//! (`reef.cluster.<kind>`), so a reader can pick kinds with a filter.

use crate::envelope::{Message, MessageKind};
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    NodeUp,
    NodeDown,
    NodeDrained,
    DeployStarted,
    DeployHealthy,
    DeployFailed,
    DeployReverted,
    InstanceCrashed,
    CertIssued,
    CertFailed,
    CronFailed,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::NodeUp,
        EventKind::NodeDown,
        EventKind::NodeDrained,
        EventKind::DeployStarted,
        EventKind::DeployHealthy,
        EventKind::DeployFailed,
        EventKind::DeployReverted,
        EventKind::InstanceCrashed,
        EventKind::CertIssued,
        EventKind::CertFailed,
        EventKind::CronFailed,
    ];

    /// Its name, as in subjects, `reef events` and `--kind`.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::NodeUp => "node.up",
            EventKind::NodeDown => "node.down",
            EventKind::NodeDrained => "node.drained",
            EventKind::DeployStarted => "deploy.started",
            EventKind::DeployHealthy => "deploy.healthy",
            EventKind::DeployFailed => "deploy.failed",
            EventKind::DeployReverted => "deploy.reverted",
            EventKind::InstanceCrashed => "instance.crashed",
            EventKind::CertIssued => "cert.issued",
            EventKind::CertFailed => "cert.failed",
            EventKind::CronFailed => "cron.failed",
        }
    }

    /// The kind named `name`, or why there is none.
    pub fn parse(name: &str) -> Result<EventKind, String> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown event kind {name:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }

    /// The subject events of this kind are written on.
    pub fn subject(self) -> String {
        format!("{}.{}", crate::subjects::CLUSTER_EVENTS_PREFIX, self.name())
    }
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEvent {
    /// When the leader saw it, ms since the epoch.
    pub at_ms: u64,
    pub kind: EventKind,
    /// What it is about: a node's name, an app, a domain, a periodic job.
    pub target: String,
    /// What happened, for people (a release number, a reason).
    pub message: String,
}

impl Message for ClusterEvent {
    const KIND: MessageKind = MessageKind::ClusterEvent;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode};
    use proptest::prelude::*;

    #[test]
    fn every_kind_has_a_name_that_parses_back_and_a_subject_of_its_own() {
        let mut subjects = std::collections::BTreeSet::new();
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.name()), Ok(kind));
            assert!(subjects.insert(kind.subject()), "{kind:?}");
        }
        let err = EventKind::parse("node.sideways").unwrap_err();
        assert!(
            err.contains("node.up") && err.contains("cron.failed"),
            "{err}"
        );
        assert_eq!(EventKind::NodeDown.subject(), "reef.cluster.node.down");
    }

    #[test]
    fn events_travel_whole() {
        let event = ClusterEvent {
            at_ms: 1,
            kind: EventKind::DeployFailed,
            target: "web".into(),
            message: "release 4: exited with code 1".into(),
        };
        assert_eq!(
            decode::<ClusterEvent>(&encode(&event).unwrap()).unwrap(),
            event
        );
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<ClusterEvent>(&bytes);
        }
    }
}
