//! Jobs: submitting one, and stopping one (with the other copies of a
//! replicated job).

use super::invalid;
use crate::drive::Coordinator;
use reef_proto::agent::AgentCommand;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::job::{JobRecord, JobSpec, JobState};
use reef_proto::{now_ms, JobId};

impl Coordinator {
    pub(crate) async fn job(&self, id: JobId) -> Result<(JobRecord, u64), ApiError> {
        self.store
            .jobs
            .get(&id.to_string())
            .await?
            .ok_or_else(|| ApiError::new(ApiErrorKind::NotFound, format!("no job {id}")))
    }

    pub(crate) async fn submit(&mut self, spec: JobSpec) -> Result<JobRecord, ApiError> {
        spec.validate().map_err(|e| invalid(e.to_string()))?;
        self.submit_all(vec![spec])
            .await
            .pop()
            .unwrap_or_else(|| Err(ApiError::new(ApiErrorKind::Internal, "no result")))
    }

    pub(crate) async fn stop(&mut self, id: JobId) -> Result<JobRecord, ApiError> {
        let key = id.to_string();
        let updated = self
            .store
            .jobs
            .modify(&key, |job| {
                if job.state.is_terminal() || job.stop_requested {
                    return false;
                }
                job.stop_requested = true;
                if matches!(job.state, JobState::Pending { .. }) {
                    job.state = JobState::Stopped;
                    job.finished_at_ms = Some(now_ms());
                }
                true
            })
            .await?
            .ok_or_else(|| ApiError::new(ApiErrorKind::NotFound, format!("no job {id}")))?;
        if updated.state == JobState::Stopped {
            self.cluster.unwait(id);
        } else if let (false, Some(alloc), Some(node)) =
            (updated.state.is_terminal(), updated.alloc, updated.node)
        {
            // Sent again on a repeated stop: the agent treats stops idempotently.
            self.send_command(
                node,
                format!("stop-{alloc}"),
                AgentCommand::Stop { alloc, job: id },
            )
            .await;
        }
        Ok(updated)
    }
}
