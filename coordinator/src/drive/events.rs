//! Applying allocation events reported by agents. Each event carries a
//! per-allocation sequence number; one already applied is acknowledged and
//! ignored, so JetStream redelivery never has a second effect. An event is
//! acknowledged only after its effect is in KV.

use crate::drive::Coordinator;
use crate::error::CoordinatorError;
use crate::error::Report;
use crate::plan::transitions::{apply_alloc_event, job_after, AllocChange};
use async_nats::jetstream::{message::AckKind, Message};
use reef_proto::agent::AllocEvent;
use reef_proto::alloc::Allocation;
use reef_proto::app::InstanceEvent;
use reef_proto::job::JobState;
use reef_proto::{decode, now_ms, peek_kind, subjects, MessageKind};

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
        let key = event.alloc.to_string();
        let mut applied = false;
        let cached = self.cluster.cached_alloc(event.alloc);
        let Some((alloc, revision)) = self
            .store
            .allocs
            .modify_from(&key, cached, |alloc| {
                let change = apply_alloc_event(alloc, event, now_ms());
                applied = change == AllocChange::Moved;
                change.writes()
            })
            .await?
        else {
            tracing::debug!(alloc = %event.alloc, "event for an unknown allocation");
            return Ok(Outcome::Drop);
        };
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

    pub(crate) async fn update_job(
        &mut self,
        alloc: &Allocation,
        event: &AllocEvent,
    ) -> Result<(), CoordinatorError> {
        let key = alloc.job.to_string();
        let cached = self.cluster.take_cached_job(alloc.job);
        let stored = self
            .store
            .jobs
            .modify_from(&key, cached, |job| match job_after(job, alloc, event) {
                Some(next) => {
                    *job = next;
                    true
                }
                None => false,
            })
            .await?;
        if let Some((job, revision)) = stored {
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
            } else if job.replica.is_some() {
                self.copy_ended(&job).await?;
            }
        }
        Ok(())
    }
}
