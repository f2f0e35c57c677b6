//! Applying allocation events reported by agents. Each event carries a
//! per-allocation sequence number; one already applied is acknowledged and
//! ignored, so JetStream redelivery never has a second effect. An event is
//! acknowledged only after its effect is in KV.

use crate::drive::Coordinator;
use crate::error::CoordinatorError;
use crate::error::Report;
use crate::plan::transitions::{apply_alloc_event, job_after, AllocChange};
use crate::store::{Bucket, StoreError};
use async_nats::jetstream::{message::AckKind, Message};
use reef_proto::agent::AllocEvent;
use reef_proto::alloc::Allocation;
use reef_proto::app::InstanceEvent;
use reef_proto::job::{JobRecord, JobState};
use reef_proto::{decode, now_ms, peek_kind, subjects, MessageKind};

/// How often a decision is taken again on a fresher record before giving up.
const MAX_TRIES: usize = 16;

/// What to tell JetStream about an event message.
enum Outcome {
    Done,
    /// Bad message: never redeliver it.
    Drop,
    /// Could not be applied now: redeliver later.
    Retry,
}

impl Coordinator {
    pub(crate) async fn handle_event(&mut self, msg: Message) {
        if peek_kind(&msg.payload) == Ok(MessageKind::InstanceEvent) {
            let outcome = self.handle_instance_event(&msg).await;
            return self.settle(msg, outcome).await;
        }
        let outcome = match decode::<AllocEvent>(&msg.payload) {
            Err(e) => {
                tracing::debug!(subject = %msg.subject, error = %Report(&e), "dropping malformed event");
                Outcome::Drop
            }
            Ok(event) if msg.subject.as_str() != subjects::event(event.node, event.alloc) => {
                tracing::debug!(subject = %msg.subject, "dropping event published on another subject");
                Outcome::Drop
            }
            Ok(event) => match self.apply(&event).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::warn!(alloc = %event.alloc, error = %Report(&e), "could not apply event");
                    Outcome::Retry
                }
            },
        };
        self.settle(msg, outcome).await;
    }

    async fn handle_instance_event(&mut self, msg: &Message) -> Outcome {
        let event = match decode::<InstanceEvent>(&msg.payload) {
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(subject = %msg.subject, error = %Report(&e), "dropping malformed instance event");
                return Outcome::Drop;
            }
        };
        if msg.subject.as_str() != subjects::instance_event(event.node, event.instance) {
            return Outcome::Drop;
        }
        match self.apply_instance_event(&event).await {
            Ok(true) => Outcome::Done,
            Ok(false) => Outcome::Drop,
            Err(e) => {
                tracing::warn!(instance = %event.instance, error = %Report(&e), "could not apply instance event");
                Outcome::Retry
            }
        }
    }

    async fn settle(&mut self, msg: Message, outcome: Outcome) {
        let ack = match outcome {
            Outcome::Done => msg.ack().await,
            Outcome::Drop => {
                self.malformed += 1;
                msg.ack_with(AckKind::Term).await
            }
            Outcome::Retry => {
                msg.ack_with(AckKind::Nak(Some(std::time::Duration::from_millis(500))))
                    .await
            }
        };
        if let Err(e) = ack {
            tracing::warn!(error = %Report(&*e), "could not acknowledge event");
        }
    }

    async fn apply(&mut self, event: &AllocEvent) -> Result<Outcome, CoordinatorError> {
        let Some((alloc, revision, change)) = self.write_alloc_event(event).await? else {
            tracing::debug!(alloc = %event.alloc, "event for an unknown allocation");
            return Ok(Outcome::Drop);
        };
        let applied = change == AllocChange::Moved;
        if alloc.node != event.node || alloc.job != event.job {
            tracing::warn!(alloc = %event.alloc, node = %event.node, "event from a node that does not hold the allocation");
            return Ok(Outcome::Drop);
        }
        if !applied {
            if alloc.state == event.state {
                // This event's change is in KV, but its first application may
                // have stopped halfway (the allocation written, then a write
                // of the job failed or timed out): finish it.
                self.update_job(&alloc, event).await?;
                if alloc.state.is_terminal() && self.cluster.release(alloc.id).is_some() {
                    self.place_pending(false).await;
                }
            }
            return Ok(Outcome::Done);
        }
        self.cluster.note_alloc_revision(alloc.id, revision);
        self.update_job(&alloc, event).await?;
        if alloc.state.is_terminal() {
            self.cluster.release(alloc.id);
            self.place_pending(false).await;
        } else {
            self.cluster.commit(alloc);
        }
        Ok(Outcome::Done)
    }

    /// Decides what `event` does to its allocation
    /// (`transitions::apply_alloc_event`, on the view's copy when it is
    /// current), then writes that with compare-and-set on the revision it
    /// decided on; a lost race reads the allocation again and decides
    /// again. A decision to write nothing is never taken on the cached copy
    /// alone. Returns the allocation as stored, its revision and the
    /// change; None for an unknown allocation.
    async fn write_alloc_event(
        &self,
        event: &AllocEvent,
    ) -> Result<Option<(Allocation, u64, AllocChange)>, CoordinatorError> {
        let key = event.alloc.to_string();
        let mut cached = self.cluster.cached_alloc(event.alloc);
        for _ in 0..MAX_TRIES {
            let from_cache = cached.is_some();
            let (current, revision) = match cached.take() {
                Some(hit) => hit,
                None => match self.store.allocs.get(&key).await? {
                    Some(fresh) => fresh,
                    None => return Ok(None),
                },
            };
            let mut next = current.clone();
            let change = apply_alloc_event(&mut next, event, now_ms());
            if !change.writes() {
                if from_cache {
                    continue;
                }
                return Ok(Some((current, revision, change)));
            }
            if let Some(written) = self.store.allocs.put_if(&key, &next, revision).await? {
                return Ok(Some((next, written, change)));
            }
        }
        Err(StoreError::Conflict {
            bucket: self.store.allocs.name().to_string(),
            key,
        }
        .into())
    }

    /// Brings `alloc`'s job in line with the event that moved it.
    pub(crate) async fn update_job(
        &mut self,
        alloc: &Allocation,
        event: &AllocEvent,
    ) -> Result<(), CoordinatorError> {
        let cached = self.cluster.take_cached_job(alloc.job);
        if let Some((job, revision)) =
            write_job_after(&self.store.jobs, cached, alloc, event).await?
        {
            self.job_written(job, revision).await?;
        }
        Ok(())
    }

    /// The view's side of a job record as stored: a job sent back to
    /// pending waits for a node again, a live one is cached, and the last
    /// copy of a replicated job to end decides the group.
    pub(crate) async fn job_written(
        &mut self,
        job: JobRecord,
        revision: u64,
    ) -> Result<(), CoordinatorError> {
        if let JobState::Pending { reason } = &job.state {
            tracing::info!(job = %job.id, %reason, "retrying a job whose node was lost");
            self.cluster.wait(
                job.id,
                crate::state::cluster::Pending {
                    spec: job.spec.clone(),
                    reason: reason.clone(),
                    avoid: job.lost_on.iter().copied().collect(),
                    group: job.replica.map(|r| r.group),
                },
            );
        } else if !job.state.is_terminal() {
            self.cluster.cache_job(job, revision);
        } else {
            if let (Some(cron), Some(failure)) = (&job.cron, run_failure(&job.state)) {
                self.events.emit(
                    reef_proto::events::EventKind::CronFailed,
                    &cron.name,
                    format!(
                        "the run of {} (job {}) {failure}",
                        reef_proto::cron::tick_text(cron.tick_ms),
                        job.id
                    ),
                );
            }
            if job.replica.is_some() {
                self.copy_ended(&job).await?;
            }
        }
        Ok(())
    }
}

/// How a job that ended failed, if it did: an exit code other than 0, a
/// failure or a loss (a stop is no failure).
fn run_failure(state: &JobState) -> Option<String> {
    match state {
        JobState::Exited { code } if *code != 0 => Some(format!("exited with code {code}")),
        JobState::Failed { reason } => Some(format!("failed: {reason}")),
        JobState::Lost { reason } => Some(format!("was lost: {reason}")),
        _ => None,
    }
}

/// Writes the job of `alloc` as [`job_after`] has it after `event` (from
/// `cached` when that is current); the record as stored, None if there is
/// no job.
pub(crate) async fn write_job_after(
    jobs: &Bucket<JobRecord>,
    cached: Option<(JobRecord, u64)>,
    alloc: &Allocation,
    event: &AllocEvent,
) -> Result<Option<(JobRecord, u64)>, StoreError> {
    jobs.modify_from(&alloc.job.to_string(), cached, |job| {
        match job_after(job, alloc, event) {
            Some(next) => {
                *job = next;
                true
            }
            None => false,
        }
    })
    .await
}
