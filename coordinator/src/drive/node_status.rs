//! What every coordinator answers `node.list` with: the nodes as the
//! leader sees them, written to the leader bucket whenever something in
//! them changes (at the next tick, or at once after a node's registration,
//! drain or eligibility changed), and every few seconds regardless so the
//! times it shows stay fresh.

use super::Coordinator;
use crate::error::Report;
use reef_proto::api::NodeStatus;
use reef_proto::leader::NodeStatuses;
use reef_proto::{now_ms, subjects};
use std::time::{Duration, Instant};

/// The statuses are written at least this often, for their times.
const REFRESH: Duration = Duration::from_secs(5);

/// What was last written, and when.
#[derive(Default)]
pub(crate) struct Published {
    nodes: Vec<NodeStatus>,
    at: Option<Instant>,
}

/// Whether two lists differ in more than when each node was last heard.
fn changed(old: &[NodeStatus], new: &[NodeStatus]) -> bool {
    old.len() != new.len()
        || old.iter().zip(new).any(|(a, b)| {
            NodeStatus {
                last_seen_ms: b.last_seen_ms,
                ..a.clone()
            } != *b
        })
}

impl Coordinator {
    /// Writes the node statuses if they changed or are getting old.
    pub(crate) async fn publish_node_statuses(&mut self) {
        let now = Instant::now();
        let nodes = self.cluster.node_statuses(now);
        let fresh = self
            .node_statuses
            .at
            .is_some_and(|at| now.duration_since(at) < REFRESH);
        if fresh && !changed(&self.node_statuses.nodes, &nodes) {
            return;
        }
        let statuses = NodeStatuses {
            at_ms: now_ms(),
            nodes,
        };
        match self
            .store
            .node_statuses
            .put(subjects::NODE_STATUS_KEY, &statuses)
            .await
        {
            Ok(_) => {
                self.node_statuses = Published {
                    nodes: statuses.nodes,
                    at: Some(now),
                };
            }
            Err(e) => {
                tracing::warn!(error = %Report(&e), "could not write the node statuses; will retry")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reef_proto::api::NodeState;

    fn status(name: &str, state: NodeState, seen: u64) -> NodeStatus {
        NodeStatus {
            record: crate::plan::fixtures::node_record(name),
            state,
            last_seen_ms: seen,
            allocated: Default::default(),
            allocations: 0,
            paused: false,
            verdicts: None,
            services: Vec::new(),
        }
    }

    #[test]
    fn only_a_change_beyond_the_last_heartbeat_counts() {
        let a = status("a", NodeState::Ready, 1);
        let mut heard = a.clone();
        heard.last_seen_ms = 2;
        assert!(!changed(std::slice::from_ref(&a), &[heard]));
        let mut down = a.clone();
        down.state = NodeState::Down;
        assert!(changed(std::slice::from_ref(&a), &[down]));
        assert!(changed(std::slice::from_ref(&a), &[]));
    }
}
