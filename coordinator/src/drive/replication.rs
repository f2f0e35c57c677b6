//! Replicated jobs (`reef run --replicate N`): N copies of one job, each a
//! job record of its own on a node none of the others ran on, the first
//! holding the list of copies. When the last copy ends, the copies' results
//! are compared ([`crate::verdict`]) and the verdict is written to the first
//! copy's record, once (the commit point); the nodes it names are counted
//! against in placement from then on. Stopping any copy stops them all.
//!
//! What this module keeps in memory is rebuilt from the job records on
//! start: which nodes each undecided group has used, and every node's
//! standing from the verdicts still recorded.

use crate::drive::Coordinator;
use crate::error::CoordinatorError;
use crate::plan::verdict::{self, Reply};
use reef_proto::job::{JobRecord, Verdict};
use reef_proto::node::TrustClass;
use reef_proto::{now_ms, JobId, NodeId};

impl Coordinator {
    /// Records that a copy of `group` went to `node`.
    pub(crate) fn note_copy(&mut self, job: &JobRecord, node: NodeId) {
        if let Some(replica) = job.replica {
            self.cluster.note_copy(replica.group, node);
        }
    }

    /// The ids of every copy of `job`'s group (just `job` if it is not
    /// replicated), from the group's first record.
    async fn group_of(&self, job: &JobRecord) -> Result<Vec<JobId>, CoordinatorError> {
        let Some(replica) = job.replica else {
            return Ok(vec![job.id]);
        };
        if let Some(v) = &job.verification {
            return Ok(v.replicas.clone());
        }
        let first = self.store.jobs.get(&replica.group.to_string()).await?;
        Ok(first
            .and_then(|(first, _)| first.verification)
            .map(|v| v.replicas)
            .unwrap_or_else(|| vec![job.id]))
    }

    /// The other copies of `job`, for a stop of the whole group.
    pub(crate) async fn other_copies(
        &self,
        job: &JobRecord,
    ) -> Result<Vec<JobId>, CoordinatorError> {
        let mut ids = self.group_of(job).await?;
        ids.retain(|id| *id != job.id);
        Ok(ids)
    }

    /// After a copy of a replicated job ended: if every copy has, decides
    /// and records the verdict, and counts it for the nodes it names.
    pub(crate) async fn copy_ended(&mut self, job: &JobRecord) -> Result<(), CoordinatorError> {
        let Some(replica) = job.replica else {
            return Ok(());
        };
        let group = replica.group;
        let Some((first, _)) = self.store.jobs.get(&group.to_string()).await? else {
            return Ok(());
        };
        let Some(verification) = &first.verification else {
            return Ok(());
        };
        if verification.verdict.is_some() {
            self.cluster.forget_group(group);
            return Ok(());
        }
        let mut copies = Vec::with_capacity(verification.replicas.len());
        for id in &verification.replicas {
            let copy = if *id == first.id {
                Some(first.clone())
            } else {
                self.store
                    .jobs
                    .get(&id.to_string())
                    .await?
                    .map(|(copy, _)| copy)
            };
            match copy {
                Some(copy) if copy.state.is_terminal() => copies.push(copy),
                Some(_) => return Ok(()),
                // A copy whose record is gone counts as one without a result.
                None => {}
            }
        }
        let replies: Vec<Reply<'_>> = copies
            .iter()
            .map(|copy| Reply {
                job: copy.id,
                node: copy.node,
                dedicated: copy.node.is_some_and(|node| {
                    self.cluster
                        .node(node)
                        .is_some_and(|n| n.record.trust == TrustClass::Dedicated)
                }),
                state: &copy.state,
                result: copy.result.as_ref(),
            })
            .collect();
        let decided = verdict::decide(&replies, now_ms());
        let mut wrote = false;
        self.store
            .jobs
            .modify(&group.to_string(), |first| {
                match first.verification.as_mut() {
                    Some(v) if v.verdict.is_none() => {
                        v.verdict = Some(decided.clone());
                        wrote = true;
                        true
                    }
                    _ => {
                        wrote = false;
                        false
                    }
                }
            })
            .await?;
        self.cluster.forget_group(group);
        if wrote {
            self.count_verdict(group, &decided);
        }
        Ok(())
    }

    fn count_verdict(&mut self, group: JobId, decided: &Verdict) {
        for (node, agreed) in verdict::tally(decided) {
            self.cluster.count_standing(node, agreed);
        }
        match &decided.outcome {
            reef_proto::job::Outcome::Disagreed { dissenters, .. } => {
                tracing::warn!(job = %group, ?dissenters, "copies of a replicated job disagree")
            }
            outcome => tracing::info!(job = %group, ?outcome, "replicated job decided"),
        }
    }
}
