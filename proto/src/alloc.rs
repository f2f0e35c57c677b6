//! Allocations: one placement of a job on one node, and the state machine both
//! sides keep it in. The agent owns observed state and reports every change as
//! an event with a per-allocation sequence number; the coordinator applies
//! events in order and ignores replays, so redelivery has no second effect.

use crate::envelope::{Message, MessageKind};
use crate::ids::{AllocId, JobId, NodeId};
use crate::job::Resources;
use serde::{Deserialize, Serialize};

/// The life of an allocation:
/// `assigned -> accepted -> starting -> running -> (stopping ->) exited | stopped | failed | lost`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllocState {
    /// Published to the node; not yet recorded by its agent.
    Assigned,
    /// The agent recorded it durably and acknowledged the assignment.
    Accepted,
    /// The agent is starting the process.
    Starting,
    Running {
        pid: u32,
    },
    /// A stop is in progress (SIGTERM sent, waiting for the grace period).
    Stopping,
    /// Ended by itself with an exit code (128+N when killed by signal N).
    Exited {
        code: i32,
    },
    /// Ended because a stop was requested.
    Stopped,
    Failed {
        reason: String,
    },
    Lost {
        reason: String,
    },
}

impl AllocState {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            AllocState::Exited { .. }
                | AllocState::Stopped
                | AllocState::Failed { .. }
                | AllocState::Lost { .. }
        )
    }

    /// How far along the machine a state is; the terminal states share the
    /// last rank. An allocation's rank never goes down.
    pub fn rank(&self) -> u8 {
        match self {
            AllocState::Assigned => 0,
            AllocState::Accepted => 1,
            AllocState::Starting => 2,
            AllocState::Running { .. } => 3,
            AllocState::Stopping => 4,
            _ => 5,
        }
    }

    /// Whether an allocation may move from `self` to `next`. States only move
    /// forward; a terminal state is final; `lost` and `failed` may be reached
    /// from any live state; `stopping` only from a live state.
    pub fn can_become(&self, next: &AllocState) -> bool {
        if self.is_terminal() {
            return false;
        }
        match next {
            AllocState::Assigned => false,
            AllocState::Lost { .. } | AllocState::Failed { .. } | AllocState::Stopped => true,
            _ => next.rank() > self.rank(),
        }
    }

    /// Moves to `next` if [`can_become`](Self::can_become) allows it;
    /// returns whether it moved.
    pub fn advance(&mut self, next: AllocState) -> bool {
        let allowed = self.can_become(&next);
        if allowed {
            *self = next;
        }
        allowed
    }

    pub fn name(&self) -> &'static str {
        match self {
            AllocState::Assigned => "assigned",
            AllocState::Accepted => "accepted",
            AllocState::Starting => "starting",
            AllocState::Running { .. } => "running",
            AllocState::Stopping => "stopping",
            AllocState::Exited { .. } => "exited",
            AllocState::Stopped => "stopped",
            AllocState::Failed { .. } => "failed",
            AllocState::Lost { .. } => "lost",
        }
    }
}

/// What an allocation used, read from its control group when it ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU time, user and system, in milliseconds.
    pub cpu_ms: u64,
    /// The most memory it held at once (None where the kernel does not say).
    pub peak_memory_bytes: Option<u64>,
    /// Processes the kernel's OOM killer ended for going past its memory limit.
    pub oom_kills: u64,
    /// Times a new process or thread was refused at its process limit.
    pub pids_limit_hits: u64,
}

/// The coordinator's record of an allocation, stored in the allocations bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub id: AllocId,
    pub job: JobId,
    pub node: NodeId,
    pub resources: Resources,
    pub state: AllocState,
    /// Indices of the node's GPUs given to this allocation.
    pub gpus: Vec<u32>,
    /// Sequence number of the last event applied (0: none yet).
    pub event_seq: u32,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl Message for Allocation {
    const KIND: MessageKind = MessageKind::Allocation;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<AllocState> {
        vec![
            AllocState::Assigned,
            AllocState::Accepted,
            AllocState::Starting,
            AllocState::Running { pid: 1 },
            AllocState::Stopping,
            AllocState::Exited { code: 0 },
            AllocState::Stopped,
            AllocState::Failed { reason: "x".into() },
            AllocState::Lost { reason: "x".into() },
        ]
    }

    #[test]
    fn terminal_states_are_final() {
        for from in all().iter().filter(|s| s.is_terminal()) {
            for to in all() {
                assert!(!from.can_become(&to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn states_never_move_backwards() {
        for from in all() {
            for to in all() {
                if from.can_become(&to) && !to.is_terminal() {
                    assert!(to.rank() > from.rank(), "{from:?} -> {to:?}");
                }
            }
        }
    }

    #[test]
    fn the_normal_path_is_allowed() {
        let path = all();
        for pair in path[..6].windows(2) {
            assert!(
                pair[0].can_become(&pair[1]),
                "{:?} -> {:?}",
                pair[0],
                pair[1]
            );
        }
        assert!(AllocState::Running { pid: 1 }.can_become(&AllocState::Exited { code: 3 }));
        assert!(AllocState::Assigned.can_become(&AllocState::Lost { reason: "r".into() }));
    }
}
