//! The cluster's events as the leader notices them (`reef events`):
//! written in order to their stream by a [`Journal`], so noticing one
//! never waits on NATS.

use crate::journal::Journal;
use reef_proto::events::{ClusterEvent, EventKind};
use tokio_util::sync::CancellationToken;

/// Where the leader records what happened; cheap to clone.
#[derive(Clone)]
pub(crate) struct ClusterEvents {
    journal: Journal,
}

impl ClusterEvents {
    pub(crate) fn start(js: async_nats::jetstream::Context, shutdown: CancellationToken) -> Self {
        Self {
            journal: Journal::start("events", js, shutdown),
        }
    }

    /// Records that `kind` happened to `target`, with `message` for people.
    pub(crate) fn emit(&self, kind: EventKind, target: &str, message: impl Into<String>) {
        let event = ClusterEvent {
            at_ms: reef_proto::now_ms(),
            kind,
            target: target.to_string(),
            message: reef_proto::audit::clip(&message.into()),
        };
        tracing::debug!(kind = kind.name(), target, message = %event.message, "event");
        self.journal.write(kind.subject(), &event);
    }

    /// Waits for what is queued to be written; shutdown must come first.
    pub(crate) async fn close(&self) {
        self.journal.close().await;
    }
}
