//! Coordinator leadership: the lease one coordinator holds in the leader
//! bucket while it schedules. The others serve the API by relaying requests
//! to the holder, and take the lease over when it stops being renewed.

use crate::envelope::{Message, MessageKind};
use serde::{Deserialize, Serialize};

/// The value of the lease key: who leads, since when, and the last renewal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderLease {
    /// The holder's id, random per coordinator process; its relay subject is
    /// built from it.
    pub coordinator: String,
    /// The holder's human name (`--name`, by default the host name).
    pub name: String,
    /// When the holder took the lease.
    pub acquired_at_ms: u64,
    /// When the holder last renewed it. Informational: followers judge a
    /// lease by how long its revision has not changed on their own clock.
    pub renewed_at_ms: u64,
    /// The holder's NATS connection as its server names it (server id,
    /// client id): when the servers report it closed from the holder's side
    /// (its process is gone), followers take the lease over at once instead
    /// of waiting for it to run out. None: not known.
    #[serde(default)]
    pub connection: Option<(String, u64)>,
}

impl Message for LeaderLease {
    const KIND: MessageKind = MessageKind::LeaderLease;
}

/// Checks a coordinator id for use in a subject: 1-64 of `[A-Za-z0-9-]`.
pub fn valid_coordinator_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
