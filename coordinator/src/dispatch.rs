//! Turning placement decisions into state: an allocation and the job's new
//! state in KV first, then the assignment on the node's JetStream subject
//! (deduplicated by allocation id), so a crash between the two steps is
//! repaired on the next start by re-publishing.

use crate::error::CoordinatorError;
use crate::{scheduler, store, Coordinator};
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
    pub(crate) fn choose(&self, spec: &JobSpec) -> Result<NodeId, String> {
        scheduler::place(spec, &self.cluster.candidates(Instant::now()))
    }

    /// Records an allocation of `job` on `node`, then publishes it.
    /// Returns the job as stored.
    pub(crate) async fn assign(
        &mut self,
        job: &JobRecord,
        job_revision: Option<u64>,
        node: NodeId,
    ) -> Result<Option<JobRecord>, CoordinatorError> {
        let now = now_ms();
        let alloc = Allocation {
            id: AllocId::new(),
            job: job.id,
            node,
            resources: job.spec.resources,
            state: AllocState::Assigned,
            event_seq: 0,
            created_at_ms: now,
            updated_at_ms: now,
        };
        store::create(&self.store.allocs, &alloc.id.to_string(), &alloc).await?;
        let mut assigned = job.clone();
        assigned.state = JobState::Assigned;
        assigned.alloc = Some(alloc.id);
        assigned.node = Some(node);
        let key = job.id.to_string();
        let written = match job_revision {
            None => store::create(&self.store.jobs, &key, &assigned)
                .await
                .map(Some)?,
            Some(rev) => store::put_if(&self.store.jobs, &key, &assigned, rev).await?,
        };
        if written.is_none() {
            // The job changed under us (stopped, or placed by another
            // coordinator): withdraw the allocation.
            let mut withdrawn = alloc;
            withdrawn.state = AllocState::Lost {
                reason: "withdrawn before dispatch".into(),
            };
            let _ =
                store::modify::<Allocation>(&self.store.allocs, &withdrawn.id.to_string(), |a| {
                    *a = withdrawn.clone();
                    true
                })
                .await;
            return Ok(None);
        }
        self.cluster.commit(alloc.clone());
        self.publish_run(&alloc, &job.spec).await?;
        Ok(Some(assigned))
    }

    pub(crate) async fn publish_run(
        &self,
        alloc: &Allocation,
        spec: &JobSpec,
    ) -> Result<(), CoordinatorError> {
        let command = AgentCommand::Run(Assignment {
            alloc: alloc.id,
            job: alloc.job,
            node: alloc.node,
            spec: spec.clone(),
            issued_at_ms: now_ms(),
        });
        self.publish_command(alloc.node, &format!("run-{}", alloc.id), &command)
            .await
    }

    pub(crate) async fn publish_stop(
        &self,
        node: NodeId,
        alloc: AllocId,
        job: JobId,
    ) -> Result<(), CoordinatorError> {
        let command = AgentCommand::Stop { alloc, job };
        self.publish_command(node, &format!("stop-{alloc}"), &command)
            .await
    }

    async fn publish_command(
        &self,
        node: NodeId,
        msg_id: &str,
        command: &AgentCommand,
    ) -> Result<(), CoordinatorError> {
        let payload = encode(command).map_err(CoordinatorError::store)?;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        self.store
            .js
            .publish_with_headers(subjects::assign(node), headers, payload)
            .await
            .map_err(CoordinatorError::store)?
            .await
            .map_err(CoordinatorError::store)?;
        Ok(())
    }

    /// Tries to place waiting jobs, oldest first.
    pub(crate) async fn place_pending(&mut self) {
        if self.cluster.pending.is_empty() {
            return;
        }
        let ids: Vec<JobId> = self
            .cluster
            .pending
            .iter()
            .take(PENDING_PER_PASS)
            .copied()
            .collect();
        for id in ids {
            if let Err(e) = self.place_one_pending(id).await {
                tracing::warn!(job = %id, error = %e, "could not place pending job");
                return;
            }
        }
    }

    async fn place_one_pending(&mut self, id: JobId) -> Result<(), CoordinatorError> {
        let key = id.to_string();
        let Some((job, revision)) = store::get::<JobRecord>(&self.store.jobs, &key).await? else {
            self.cluster.pending.remove(&id);
            return Ok(());
        };
        let JobState::Pending { reason: old_reason } = &job.state else {
            self.cluster.pending.remove(&id);
            return Ok(());
        };
        match self.choose(&job.spec) {
            Ok(node) => {
                self.cluster.pending.remove(&id);
                self.assign(&job, Some(revision), node).await?;
            }
            Err(reason) if &reason != old_reason => {
                // Keep the visible reason current.
                let mut updated = job.clone();
                updated.state = JobState::Pending { reason };
                store::put_if(&self.store.jobs, &key, &updated, revision).await?;
            }
            Err(_) => {}
        }
        Ok(())
    }
}
