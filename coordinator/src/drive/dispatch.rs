//! Turning placement decisions into state: the allocation and the job's new
//! state go to KV first, then the assignment to the node's JetStream subject
//! (deduplicated by allocation id). An assignment that could not be published
//! is retried until it is, and after a restart every allocation still
//! `assigned` is published again; the agent ignores copies.

use crate::drive::Coordinator;
use crate::error::{BoxError, CoordinatorError, Report};
use crate::plan::scheduler;
use crate::state::cluster::Pending;
use async_nats::HeaderMap;
use reef_proto::agent::{AgentCommand, Assignment};
use reef_proto::alloc::{AllocState, Allocation};
use reef_proto::job::{JobRecord, JobSpec, JobState};
use reef_proto::{encode, now_ms, subjects, AllocId, JobId, NodeId};
use std::time::Instant;

/// How many pending jobs one pass looks at, so a long queue cannot starve the loop.
const PENDING_PER_PASS: usize = 512;

impl Coordinator {
    /// Picks a node for `spec`, or the reason none fits.
    /// A copy of replicated job `group` does not go where another went.
    pub(crate) fn choose(
        &self,
        spec: &JobSpec,
        avoid: &std::collections::BTreeSet<NodeId>,
        group: Option<JobId>,
    ) -> Result<scheduler::Placement, scheduler::NoFit> {
        static NONE: std::collections::BTreeSet<NodeId> = std::collections::BTreeSet::new();
        let exclude = group
            .and_then(|g| self.cluster.copies_went_to(g))
            .unwrap_or(&NONE);
        let mut candidates = self.cluster.candidates(Instant::now());
        if let Some(app) = &spec.app {
            // An app's `[[cron]]` runs beside one of its healthy instances,
            // in the release that instance has unpacked.
            let beside: std::collections::BTreeSet<NodeId> = self
                .live_instances(app)
                .into_iter()
                .filter(|i| i.state == reef_proto::app::InstanceState::Healthy)
                .map(|i| i.node)
                .collect();
            candidates.retain(|c| beside.contains(&c.id));
            if candidates.is_empty() {
                return Err(scheduler::NoFit {
                    reason: format!("no healthy instance of app {app} to run beside"),
                });
            }
        }
        scheduler::place_demand(
            scheduler::Demand {
                failed_on: avoid,
                exclude,
                ..spec.into()
            },
            &candidates,
            scheduler::Scan::Sampled {
                start: self.cluster.scan_start(),
            },
        )
    }

    /// Records an allocation of `job` on `node`, then publishes it. The job is
    /// created (`job_revision` None) or updated from that revision; if it
    /// changed meanwhile, the allocation is withdrawn and None returned.
    pub(crate) async fn assign(
        &mut self,
        job: &JobRecord,
        job_revision: Option<u64>,
        placement: scheduler::Placement,
    ) -> Result<Option<JobRecord>, CoordinatorError> {
        let node = placement.node;
        let alloc = new_allocation(job, placement, now_ms());
        let alloc_revision = self
            .store
            .allocs
            .create_new(&alloc.id.to_string(), &alloc)
            .await?;
        let mut assigned = job.clone();
        assigned.state = JobState::Assigned;
        assigned.alloc = Some(alloc.id);
        assigned.node = Some(node);
        let key = job.id.to_string();
        let written = match job_revision {
            None => self.store.jobs.create_new(&key, &assigned).await.map(Some),
            Some(rev) => self.store.jobs.put_if(&key, &assigned, rev).await,
        };
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                // No job points at the allocation: it must never run.
                let reason = "withdrawn: the job could not be updated";
                if let Err(e) = self.withdraw(alloc.id, reason).await {
                    tracing::warn!(alloc = %alloc.id, error = %Report(&e), "could not withdraw an allocation; the next leader will");
                }
                return Err(e.into());
            }
        };
        if written.is_none() {
            // Stopped, or placed by another coordinator, since it was read.
            self.withdraw(alloc.id, "withdrawn before dispatch: the job changed")
                .await?;
            return Ok(None);
        }
        self.cluster.commit(alloc.clone());
        self.metrics.placed(1);
        self.note_copy(job, node);
        self.cluster.note_alloc_revision(alloc.id, alloc_revision);
        if let Some(revision) = written {
            self.cluster.cache_job(assigned.clone(), revision);
        }
        if let Err(e) = self.publish_run(&alloc, &job.spec).await {
            // The job is accepted (it is in KV); the assignment is retried.
            tracing::warn!(alloc = %alloc.id, error = %Report(&e), "assignment not published yet; will retry");
            self.unsent.insert(alloc.id);
        }
        Ok(Some(assigned))
    }

    /// Publishes every assignment that is recorded but not known to be in the stream.
    pub(crate) async fn retry_unsent(&mut self) {
        for id in std::mem::take(&mut self.unsent) {
            let Some(alloc) = self.cluster.alloc(id).cloned() else {
                continue;
            };
            if alloc.state != AllocState::Assigned {
                continue;
            }
            let job = match self.store.jobs.get(&alloc.job.to_string()).await {
                Ok(Some((job, _))) if job.alloc == Some(id) => job,
                Ok(_) => {
                    // The job never pointed at this allocation: a coordinator
                    // stopped between recording the allocation and committing
                    // the job to it. The job record is the commit point, so this
                    // allocation is withdrawn, never run.
                    let reason = "withdrawn before dispatch: the job was not committed to it";
                    match self.withdraw(id, reason).await {
                        Ok(()) => {
                            tracing::info!(alloc = %id, "withdrew an allocation its job never committed to")
                        }
                        Err(e) => {
                            tracing::warn!(alloc = %id, error = %Report(&e), "could not withdraw an allocation")
                        }
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(alloc = %id, error = %Report(&e), "could not read job to re-publish");
                    self.unsent.insert(id);
                    continue;
                }
            };
            if let Err(e) = self.publish_run(&alloc, &job.spec).await {
                tracing::warn!(alloc = %id, error = %Report(&e), "assignment still not published");
                self.unsent.insert(id);
            }
        }
    }

    /// Takes back an allocation no job record points at: out of the view,
    /// and `lost` with `reason` in KV, so it is never run.
    pub(crate) async fn withdraw(
        &mut self,
        id: AllocId,
        reason: &str,
    ) -> Result<(), CoordinatorError> {
        self.cluster.release(id);
        self.store
            .allocs
            .modify(&id.to_string(), |a| {
                a.state.advance(AllocState::Lost {
                    reason: reason.into(),
                })
            })
            .await?;
        Ok(())
    }

    /// Publishes a job's assignment without waiting for JetStream's
    /// acknowledgement: the loop collects it later ([`Coordinator::acked`]),
    /// and a refused one is published again on a tick (deduplicated by the
    /// allocation id). The job is in KV already, so nothing waits on the ack.
    pub(crate) async fn publish_run(
        &mut self,
        alloc: &Allocation,
        spec: &JobSpec,
    ) -> Result<(), CoordinatorError> {
        let command = AgentCommand::Run(Box::new(Assignment {
            alloc: alloc.id,
            job: alloc.job,
            node: alloc.node,
            spec: spec.clone(),
            gpus: alloc.gpus.clone(),
            issued_at_ms: now_ms(),
        }));
        let payload = self.seal(alloc.node, &command)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("run-{}", alloc.id).as_str(),
        );
        let ack = self
            .store
            .js
            .publish_with_headers(subjects::assign(alloc.node), headers, payload)
            .await
            .map_err(|e| CoordinatorError::Publish {
                what: format!("the assignment of {}", alloc.id),
                source: e.into(),
            })?;
        let id = alloc.id;
        self.acks.spawn(async move { (id, ack.await.map(|_| ())) });
        Ok(())
    }

    /// `command` for `node`, signed with the cluster's assignment key. A
    /// coordinator without the key sends it unsigned, and the node refuses it.
    fn seal(
        &mut self,
        node: NodeId,
        command: &AgentCommand,
    ) -> Result<bytes::Bytes, CoordinatorError> {
        let Some(authority) = &self.authority else {
            return encode(command).map_err(|e| CoordinatorError::Encode {
                what: format!("a command for node {node}"),
                source: Box::new(e),
            });
        };
        self.command_seq += 1;
        let expires = now_ms() + reef_proto::seal::COMMAND_LIFETIME_MS;
        reef_proto::envelope::encode_sealed(command, node, self.command_seq, expires, |bytes| {
            authority.assign.sign(bytes)
        })
        .map_err(|e| CoordinatorError::Encode {
            what: format!("a sealed command for node {node}"),
            source: Box::new(e),
        })
    }

    /// JetStream answered for an assignment published by `publish_run`.
    pub(crate) fn acked(
        &mut self,
        alloc: AllocId,
        result: Result<(), async_nats::jetstream::context::PublishError>,
    ) {
        if let Err(error) = result {
            let error = Report(&error);
            tracing::warn!(%alloc, %error, "assignment not stored by JetStream; will publish again");
            self.unsent.insert(alloc);
        }
    }

    /// Publishes a command for a node, or, if NATS refuses it now, keeps it
    /// and retries it every tick (deduplicated by `msg_id`, so a retry of a
    /// command that did land has no second effect).
    pub(crate) async fn send_command(
        &mut self,
        node: NodeId,
        msg_id: String,
        command: AgentCommand,
    ) {
        if let Err(e) = self.publish_command(node, &msg_id, &command).await {
            tracing::warn!(%node, %msg_id, error = %Report(&e), "command not published yet; will retry");
            self.queued.push((node, msg_id, command));
        }
    }

    /// Publishes many commands at once (their round trips overlap); any
    /// NATS refuses is kept and retried every tick, as with [`Self::send_command`].
    pub(crate) async fn send_commands(&mut self, commands: Vec<(NodeId, String, AgentCommand)>) {
        use futures::StreamExt;
        let mut sealed = Vec::with_capacity(commands.len());
        for (node, msg_id, command) in commands {
            match self.seal(node, &command) {
                Ok(payload) => sealed.push((node, msg_id, command, payload)),
                Err(e) => {
                    tracing::warn!(%node, %msg_id, error = %Report(&e), "command not sealed yet; will retry");
                    self.queued.push((node, msg_id, command));
                }
            }
        }
        let js = self.store.js.clone();
        let published: Vec<_> = futures::stream::iter(sealed)
            .map(move |(node, msg_id, command, payload)| {
                let js = js.clone();
                async move {
                    let result = publish_sealed(&js, node, &msg_id, payload).await;
                    (node, msg_id, command, result)
                }
            })
            .buffer_unordered(COMMANDS_IN_FLIGHT)
            .collect()
            .await;
        for (node, msg_id, command, result) in published {
            if let Err(e) = result {
                tracing::warn!(%node, %msg_id, error = %Report(&e), "command not published yet; will retry");
                self.queued.push((node, msg_id, command));
            }
        }
    }

    /// Retries the commands `send_command` could not publish.
    pub(crate) async fn retry_queued(&mut self) {
        let queued = std::mem::take(&mut self.queued);
        if !queued.is_empty() {
            self.send_commands(queued).await;
        }
    }

    /// Publishes a command on a node's subject, deduplicated by `msg_id`,
    /// and waits for JetStream to have it.
    pub(crate) async fn publish_command(
        &mut self,
        node: NodeId,
        msg_id: &str,
        command: &AgentCommand,
    ) -> Result<(), CoordinatorError> {
        let payload = self.seal(node, command)?;
        publish_sealed(&self.store.js, node, msg_id, payload).await
    }

    /// Places waiting jobs that fit now, oldest first. Decisions are made on
    /// the in-memory view; only placements touch KV. With `refresh_reasons`,
    /// the visible reason of jobs that still wait is brought up to date.
    pub(crate) async fn place_pending(&mut self, refresh_reasons: bool) {
        let mut placements = Vec::new();
        let mut reasons = Vec::new();
        for (id, pending) in self.cluster.pending().iter().take(PENDING_PER_PASS) {
            match self.choose(&pending.spec, &pending.avoid, pending.group) {
                Ok(_) => placements.push(*id),
                Err(nofit) if refresh_reasons && nofit.reason != pending.reason => {
                    reasons.push((*id, nofit.reason))
                }
                Err(_) => {}
            }
        }
        // Placing one job changes what fits for the next: choose again for each.
        for id in placements {
            if let Err(e) = self.place_one_pending(id).await {
                tracing::warn!(job = %id, error = %Report(&e), "could not place pending job");
                return;
            }
        }
        for (id, reason) in reasons {
            if let Err(e) = self.set_pending_reason(id, reason).await {
                tracing::warn!(job = %id, error = %Report(&e), "could not update a pending job's reason");
            }
        }
    }

    async fn place_one_pending(&mut self, id: JobId) -> Result<(), CoordinatorError> {
        let Some(pending) = self.cluster.pending().get(&id) else {
            return Ok(());
        };
        let Ok(placement) = self.choose(&pending.spec, &pending.avoid, pending.group) else {
            return Ok(());
        };
        let Some((job, revision)) = self.store.jobs.get(&id.to_string()).await? else {
            self.cluster.unwait(id);
            return Ok(());
        };
        if !matches!(job.state, JobState::Pending { .. }) {
            self.cluster.unwait(id);
            return Ok(());
        }
        let Some(pending) = self.cluster.unwait(id) else {
            return Ok(());
        };
        match self.assign(&job, Some(revision), placement).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::debug!(job = %id, "job changed while being placed"),
            Err(e) => {
                // Still pending in KV: it waits here too, for the next pass.
                self.cluster.wait(id, pending);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn set_pending_reason(
        &mut self,
        id: JobId,
        reason: String,
    ) -> Result<(), CoordinatorError> {
        let updated = self
            .store
            .jobs
            .modify(&id.to_string(), |job| {
                if !matches!(job.state, JobState::Pending { .. }) {
                    return false;
                }
                job.state = JobState::Pending {
                    reason: reason.clone(),
                };
                true
            })
            .await?;
        match updated {
            Some(job) if matches!(job.state, JobState::Pending { .. }) => {
                self.cluster.wait(
                    id,
                    Pending {
                        group: job.replica.map(|r| r.group),
                        spec: job.spec,
                        reason,
                        avoid: job.lost_on.into_iter().collect(),
                    },
                );
            }
            _ => {
                self.cluster.unwait(id);
            }
        }
        Ok(())
    }
}

/// How many commands [`Coordinator::send_commands`] keeps in flight.
const COMMANDS_IN_FLIGHT: usize = 64;

/// Publishes a sealed command on `node`'s subject, deduplicated by
/// `msg_id`, and waits for JetStream to have it.
async fn publish_sealed(
    js: &async_nats::jetstream::Context,
    node: NodeId,
    msg_id: &str,
    payload: bytes::Bytes,
) -> Result<(), CoordinatorError> {
    let mut headers = HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
    let failed = |source: BoxError| CoordinatorError::Publish {
        what: format!("command {msg_id}"),
        source,
    };
    js.publish_with_headers(subjects::assign(node), headers, payload)
        .await
        .map_err(|e| failed(e.into()))?
        .await
        .map_err(|e| failed(e.into()))?;
    Ok(())
}

/// A new allocation of `job` where `placement` says, not yet handed to its node.
pub(crate) fn new_allocation(
    job: &JobRecord,
    placement: scheduler::Placement,
    now: u64,
) -> Allocation {
    Allocation {
        id: AllocId::new(),
        job: job.id,
        node: placement.node,
        resources: job.spec.resources,
        gpus: placement.gpus,
        state: AllocState::Assigned,
        event_seq: 0,
        created_at_ms: now,
        updated_at_ms: now,
    }
}
