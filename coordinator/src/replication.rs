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

use crate::error::CoordinatorError;
use crate::verdict::{self, Reply};
use crate::{store, Coordinator};
use reef_proto::job::{JobRecord, Replica, Verdict, Verification};
use reef_proto::node::TrustClass;
use reef_proto::{now_ms, JobId, NodeId};
use std::collections::{BTreeSet, HashMap};

/// The copies of a new replicated job made from `first` (already made
/// for its spec): `copies` records, the first keeping its id and holding
/// the list of them all.
pub(crate) fn copies(first: JobRecord, copies: u32) -> Vec<JobRecord> {
    let group = first.id;
    let mut all: Vec<JobRecord> = (0..copies)
        .map(|index| {
            let mut copy = first.clone();
            if index > 0 {
                copy.id = JobId::new();
            }
            copy.replica = Some(Replica { group, index });
            copy
        })
        .collect();
    let replicas = all.iter().map(|c| c.id).collect();
    all[0].verification = Some(Verification {
        replicas,
        verdict: None,
    });
    all
}

/// What is rebuilt from the job records on start.
#[derive(Default)]
pub(crate) struct Loaded {
    pub groups: HashMap<JobId, BTreeSet<NodeId>>,
    pub standing: HashMap<NodeId, verdict::Standing>,
}

/// The nodes used by each undecided group, and every node's standing.
pub(crate) fn load(jobs: &[JobRecord]) -> Loaded {
    let mut loaded = Loaded::default();
    let mut decided = BTreeSet::new();
    for job in jobs {
        if let Some(verdict) = job.verification.as_ref().and_then(|v| v.verdict.as_ref()) {
            decided.insert(job.id);
            for (node, agreed) in verdict::tally(verdict) {
                loaded.standing.entry(node).or_default().count(agreed);
            }
        }
    }
    for job in jobs {
        let Some(replica) = job.replica else { continue };
        if decided.contains(&replica.group) {
            continue;
        }
        let nodes = loaded.groups.entry(replica.group).or_default();
        nodes.extend(job.node);
        nodes.extend(job.lost_on.iter().copied());
    }
    loaded
}

impl Coordinator {
    /// Records that a copy of `group` went to `node`.
    pub(crate) fn note_copy(&mut self, job: &JobRecord, node: NodeId) {
        if let Some(replica) = job.replica {
            self.cluster
                .replica_nodes
                .entry(replica.group)
                .or_default()
                .insert(node);
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
        let first = store::get::<JobRecord>(&self.store.jobs, &replica.group.to_string()).await?;
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
        let Some((first, _)) =
            store::get::<JobRecord>(&self.store.jobs, &group.to_string()).await?
        else {
            return Ok(());
        };
        let Some(verification) = &first.verification else {
            return Ok(());
        };
        if verification.verdict.is_some() {
            self.cluster.replica_nodes.remove(&group);
            return Ok(());
        }
        let mut copies = Vec::with_capacity(verification.replicas.len());
        for id in &verification.replicas {
            let copy = if *id == first.id {
                Some(first.clone())
            } else {
                store::get::<JobRecord>(&self.store.jobs, &id.to_string())
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
                        .nodes
                        .get(&node)
                        .is_some_and(|n| n.record.trust == TrustClass::Dedicated)
                }),
                state: &copy.state,
                result: copy.result.as_ref(),
            })
            .collect();
        let decided = verdict::decide(&replies, now_ms());
        let mut wrote = false;
        store::modify::<JobRecord>(&self.store.jobs, &group.to_string(), |first| {
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
        self.cluster.replica_nodes.remove(&group);
        if wrote {
            self.count_verdict(group, &decided);
        }
        Ok(())
    }

    fn count_verdict(&mut self, group: JobId, decided: &Verdict) {
        for (node, agreed) in verdict::tally(decided) {
            self.cluster.standing.entry(node).or_default().count(agreed);
        }
        match &decided.outcome {
            reef_proto::job::Outcome::Disagreed { dissenters, .. } => {
                tracing::warn!(job = %group, ?dissenters, "copies of a replicated job disagree")
            }
            outcome => tracing::info!(job = %group, ?outcome, "replicated job decided"),
        }
    }
}
