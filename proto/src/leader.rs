//! Coordinator leadership: the lease one coordinator holds in the leader
//! bucket while it schedules. The others serve the API by relaying requests
//! to the holder, and take the lease over when it stops being renewed.
//!
//! The leader also keeps, in the same bucket, what every coordinator
//! answers `node.list` from ([`NodeStatuses`], key [`crate::subjects::NODE_STATUS_KEY`]) and what
//! the next leader starts from ([`Checkpoint`], key [`crate::subjects::CHECKPOINT_KEY`]).

use crate::api::NodeStatus;
use crate::envelope::{Message, MessageKind};
use crate::ids::{AllocId, InstanceId, JobId, NodeId};
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

/// The nodes as the leader saw them last: what `reef nodes` shows, from
/// whichever coordinator answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatuses {
    /// When the leader wrote it.
    pub at_ms: u64,
    pub nodes: Vec<NodeStatus>,
}

impl Message for NodeStatuses {
    const KIND: MessageKind = MessageKind::NodeStatuses;
}

/// Where a new leader's view starts: the records that were live when the
/// leader wrote it, and the position of each bucket's stream then. A new
/// leader reads these records, then only what was written to each bucket
/// after its position, so its start does not grow with the finished jobs
/// and instances the buckets keep.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub at_ms: u64,
    /// The last sequence of the jobs, allocations and instances buckets.
    pub jobs_seq: u64,
    pub allocs_seq: u64,
    pub instances_seq: u64,
    /// Jobs not finished (pending, placed or running).
    pub live_jobs: Vec<JobId>,
    /// Allocations not finished.
    pub live_allocs: Vec<AllocId>,
    /// Instances not finished.
    pub live_instances: Vec<InstanceId>,
    /// Instances that ended within the reconciler's memory (an hour), for
    /// its backoffs.
    pub recent_endings: Vec<InstanceId>,
    /// Each node's standing from the verdicts on replicated jobs:
    /// (node, agreed, disagreed).
    pub standing: Vec<(NodeId, u64, u64)>,
    /// The replicated jobs not decided yet, with the nodes their copies
    /// went to.
    pub groups: Vec<(JobId, Vec<NodeId>)>,
}

impl Message for Checkpoint {
    const KIND: MessageKind = MessageKind::Checkpoint;
}

/// Checks a coordinator id for use in a subject: 1-64 of `[A-Za-z0-9-]`.
pub fn valid_coordinator_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
