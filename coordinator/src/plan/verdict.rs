//! Comparing the copies of a replicated job (`reef run --replicate N`):
//! pure functions from the copies' records to a verdict, and from a verdict
//! to what it says of each node.
//!
//! A copy's answer is a fingerprint of its exit code, its stdout digest and
//! its output files' digests; a copy that failed, was lost or was stopped
//! gives none and counts neither way. The accepted answer is the one most
//! copies gave, if more than half of the answers; with no such majority, the
//! one every dedicated node (the cluster's own machines) gave, if they all
//! gave the same; otherwise there is none. Nodes that answered something
//! else are named, and [`tally`] counts them against their nodes.

use reef_proto::job::{Answer, JobResult, JobState, Outcome, Verdict};
use reef_proto::{JobId, NodeId};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What the verdict needs to know of one copy.
#[derive(Clone, Debug)]
pub struct Reply<'a> {
    pub job: JobId,
    pub node: Option<NodeId>,
    /// Its node is a dedicated one.
    pub dedicated: bool,
    pub state: &'a JobState,
    pub result: Option<&'a JobResult>,
}

/// A digest of everything a copy produced, in hex.
pub fn fingerprint(code: i32, result: &JobResult) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("exit {code}\nstdout {}\n", result.stdout_sha256));
    for (path, digest) in &result.outputs {
        let digest = digest.as_deref().unwrap_or("missing");
        hasher.update(format!("file {} {path}\n", digest));
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn answer(reply: &Reply<'_>) -> Answer {
    let (fingerprint, exit_code) = match (reply.state, reply.result) {
        (JobState::Exited { code }, Some(result)) => {
            (Some(fingerprint(*code, result)), Some(*code))
        }
        (JobState::Exited { code }, None) => (None, Some(*code)),
        _ => (None, None),
    };
    Answer {
        job: reply.job,
        node: reply.node,
        fingerprint,
        exit_code,
    }
}

/// The verdict over every copy's reply (all of them ended).
pub fn decide(replies: &[Reply<'_>], now_ms: u64) -> Verdict {
    let answers: Vec<Answer> = replies.iter().map(answer).collect();
    let outcome = outcome(replies, &answers);
    Verdict {
        outcome,
        answers,
        decided_at_ms: now_ms,
    }
}

fn outcome(replies: &[Reply<'_>], answers: &[Answer]) -> Outcome {
    let given: Vec<(&Reply<'_>, &str)> = replies
        .iter()
        .zip(answers)
        .filter_map(|(reply, a)| a.fingerprint.as_deref().map(|f| (reply, f)))
        .collect();
    if given.len() < 2 {
        return Outcome::Undecided {
            reason: format!(
                "only {} of {} copies produced a result",
                given.len(),
                replies.len()
            ),
        };
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, f) in &given {
        *counts.entry(f).or_default() += 1;
    }
    let (top, top_count) = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(f, n)| (*f, *n))
        .expect("at least two answers");
    let (accepted, by_dedicated) = if top_count * 2 > given.len() {
        (top, false)
    } else {
        let mut dedicated = given.iter().filter(|(r, _)| r.dedicated).map(|(_, f)| *f);
        match dedicated.next() {
            Some(first) if dedicated.all(|f| f == first) => (first, true),
            Some(_) => {
                return Outcome::Undecided {
                    reason: "no majority, and the dedicated nodes disagree among themselves".into(),
                }
            }
            None => {
                return Outcome::Undecided {
                    reason: format!(
                        "no majority: {} different results from {} copies, and no dedicated \
                         node to decide (run on more nodes, or include a dedicated one)",
                        counts.len(),
                        given.len()
                    ),
                }
            }
        }
    };
    let mut dissenters: Vec<NodeId> = given
        .iter()
        .filter(|(_, f)| *f != accepted)
        .filter_map(|(r, _)| r.node)
        .collect();
    dissenters.dedup();
    if dissenters.is_empty() {
        Outcome::Agreed {
            fingerprint: accepted.to_string(),
        }
    } else {
        Outcome::Disagreed {
            fingerprint: accepted.to_string(),
            dissenters,
            by_dedicated,
        }
    }
}

/// What a verdict says of each node that answered: (node, agreed with the
/// accepted result). Nothing for an undecided verdict.
pub fn tally(verdict: &Verdict) -> Vec<(NodeId, bool)> {
    let Some(accepted) = verdict.outcome.accepted() else {
        return Vec::new();
    };
    verdict
        .answers
        .iter()
        .filter_map(|a| Some((a.node?, a.fingerprint.as_deref()? == accepted)))
        .collect()
}

/// A node's standing from the verdicts that named it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    pub agreed: u64,
    pub disagreed: u64,
}

impl Standing {
    pub fn count(&mut self, agreed: bool) {
        if agreed {
            self.agreed += 1;
        } else {
            self.disagreed += 1;
        }
    }

    /// The share of its results that disagreed, in [0, 1].
    pub fn distrust(&self) -> f64 {
        match self.agreed + self.disagreed {
            0 => 0.0,
            total => self.disagreed as f64 / total as f64,
        }
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
