//! Replicated jobs (`reef run --replicate N`), the pure parts: the copies
//! of a new job, and what is rebuilt from the job records on start (the
//! nodes each undecided group has used, every node's standing from the
//! verdicts still recorded). The verdict itself is `plan::verdict`.

use crate::plan::verdict;
use reef_proto::job::{JobRecord, Replica, Verification};
use reef_proto::{JobId, NodeId};
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
