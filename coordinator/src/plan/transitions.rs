//! What events do, as pure functions: an allocation event to its allocation
//! (applied once per sequence number, only from the node that holds it,
//! only forward through the state machine) and to its job (mirroring the
//! allocation's state, or sending the job back to pending for another
//! attempt when a lost allocation leaves it retries); an instance event to
//! its instance (once per sequence number, from its node, through
//! [`reef_proto::app::InstanceState::can_become`]). `drive/events.rs` and `drive/instances.rs` read, call
//! these inside their compare-and-set writes, and write.

use reef_proto::agent::AllocEvent;
use reef_proto::alloc::{AllocState, Allocation};
use reef_proto::app::{Instance, InstanceEvent};
use reef_proto::job::{JobRecord, JobState};

/// What an event did to its allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocChange {
    /// It came from a node that does not hold the allocation, or names
    /// another job: refused.
    Foreign,
    /// Its sequence number was applied already: a replay.
    Replay,
    /// A new sequence number whose state the machine does not allow from
    /// here (a late arrival): the number is taken, the state stays.
    Refused,
    /// The allocation moved to the event's state.
    Moved,
}

impl AllocChange {
    /// Whether the allocation record changed and must be written.
    pub fn writes(self) -> bool {
        matches!(self, AllocChange::Refused | AllocChange::Moved)
    }
}

/// Applies `event` to `alloc`, stamping the change at `now_ms`.
pub fn apply_alloc_event(alloc: &mut Allocation, event: &AllocEvent, now_ms: u64) -> AllocChange {
    if alloc.node != event.node || alloc.job != event.job {
        return AllocChange::Foreign;
    }
    if event.seq <= alloc.event_seq {
        return AllocChange::Replay;
    }
    alloc.event_seq = event.seq;
    alloc.updated_at_ms = now_ms;
    if alloc.state.advance(event.state.clone()) {
        AllocChange::Moved
    } else {
        AllocChange::Refused
    }
}

/// The job record after its allocation `alloc` reached its current state
/// through `event`; None when the job does not change (another allocation
/// is its current one, it has ended, or it is already in that state).
pub fn job_after(job: &JobRecord, alloc: &Allocation, event: &AllocEvent) -> Option<JobRecord> {
    if job.alloc != Some(alloc.id) || job.state.is_terminal() {
        return None;
    }
    let mut next_job = job.clone();
    let next = match &alloc.state {
        AllocState::Assigned | AllocState::Accepted | AllocState::Starting => return None,
        AllocState::Running { .. } | AllocState::Stopping => {
            if next_job.started_at_ms.is_none() {
                next_job.started_at_ms = Some(event.at_ms);
            }
            JobState::Running
        }
        AllocState::Exited { code } => JobState::Exited { code: *code },
        AllocState::Stopped => JobState::Stopped,
        AllocState::Failed { reason } => JobState::Failed {
            reason: reason.clone(),
        },
        AllocState::Lost { reason }
            if !job.stop_requested && (job.lost_on.len() as u32) < job.spec.retries =>
        {
            // Run it again elsewhere: the lost attempt stays recorded (its
            // allocation), and its node stops it when it returns.
            next_job.lost_on.push(alloc.node);
            next_job.alloc = None;
            next_job.node = None;
            next_job.started_at_ms = None;
            JobState::Pending {
                reason: format!(
                    "retrying ({} of {}): {reason}",
                    next_job.lost_on.len(),
                    job.spec.retries
                ),
            }
        }
        AllocState::Lost { reason } => JobState::Lost {
            reason: reason.clone(),
        },
    };
    if next == job.state {
        return None;
    }
    if next.is_terminal() {
        next_job.finished_at_ms = Some(event.at_ms);
        next_job.output_lines = event.output_lines;
        next_job.usage = event.usage;
        // A node reports a result only for what ran there to its end;
        // one that does not match what the job declared is left out.
        next_job.result = match (&next, &event.result) {
            (JobState::Exited { .. }, Some(result)) if result.validate(&job.spec).is_ok() => {
                Some(result.clone())
            }
            _ => None,
        };
    }
    next_job.state = next;
    Some(next_job)
}

/// Applies `event` to `instance`, stamping the change at `now_ms`; false
/// when it changes nothing (another node's, a replay, or a state the
/// instance cannot move to, whose number is then not taken either).
pub fn apply_instance_event(instance: &mut Instance, event: &InstanceEvent, now_ms: u64) -> bool {
    if instance.node != event.node
        || instance.app != event.app
        || event.seq <= instance.event_seq
        || !instance.state.can_become(&event.state)
    {
        return false;
    }
    instance.event_seq = event.seq;
    instance.state = event.state.clone();
    instance.port = event.port.or(instance.port);
    instance.restarts = event.restarts;
    if event.message.is_some() {
        instance.message = event.message.clone();
    }
    instance.updated_at_ms = now_ms;
    true
}

/// Whether an instance that had restarted `restarts_before` times (None:
/// not known) crashed on its way to `after`: it restarted again, or failed
/// for good. What it said, if so.
pub fn crash(restarts_before: Option<u32>, after: &Instance) -> Option<String> {
    if let reef_proto::app::InstanceState::Failed { reason } = &after.state {
        return Some(reason.clone());
    }
    let restarted = restarts_before.is_some_and(|before| after.restarts > before);
    restarted.then(|| {
        after
            .message
            .clone()
            .unwrap_or_else(|| format!("restarted ({} restarts)", after.restarts))
    })
}

#[cfg(test)]
#[path = "transitions_tests.rs"]
mod tests;
