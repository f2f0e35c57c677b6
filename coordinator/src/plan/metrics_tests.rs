use super::*;
use crate::plan::fixtures::instance;
use reef_proto::NodeId;

#[test]
fn a_waiting_job_counts_under_what_turned_away_the_most_nodes() {
    assert_eq!(pending_cause("no nodes are registered"), "no_nodes");
    assert_eq!(
        pending_cause(
            "no node fits: of 5 nodes, 1 down; 4 with too little free cpu (needs 2.000 cores, most free 1.000)"
        ),
        "cpu"
    );
    assert_eq!(
        pending_cause("no node fits: of 3 nodes, 2 not letting jobs use the network (their owners did not --allow-network); 1 down"),
        "network"
    );
    assert_eq!(
        pending_cause(
            "no node fits: of 2 nodes, 1 already ran a copy of this replicated job; 1 down"
        ),
        "replica",
        "a tie goes to the first named"
    );
    assert_eq!(pending_cause("waiting for the leader"), "other");
    assert_eq!(pending_cause("no node fits: of 2 nodes, x y"), "other");
}

#[test]
fn the_view_counts_jobs_instances_nodes_and_rollouts() {
    let reasons = [
        "no nodes are registered",
        "no node fits: of 1 nodes, 1 down",
    ];
    let allocs = [
        AllocState::Assigned,
        AllocState::Starting,
        AllocState::Running { pid: 7 },
        AllocState::Exited { code: 0 },
    ];
    let node_id = NodeId::new();
    let instances = [
        instance("web", 1, node_id, InstanceState::Healthy),
        instance("web", 2, node_id, InstanceState::Starting),
        instance("api", 3, node_id, InstanceState::Healthy),
        instance("api", 2, node_id, InstanceState::Stopped),
    ];
    let nodes = [
        (true, false, Eligibility::Eligible),
        (false, false, Eligibility::Eligible),
        (true, true, Eligibility::Eligible),
        (true, false, Eligibility::Draining { deadline_ms: 1 }),
        (true, false, Eligibility::Ineligible),
    ];
    let view = view(
        reasons.into_iter(),
        allocs.iter(),
        instances
            .iter()
            .map(|i| (i.app.as_str(), i.version, &i.state)),
        nodes.iter().map(|(ready, paused, e)| (*ready, *paused, e)),
    );
    let map = |pairs: &[(&'static str, u64)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
    assert_eq!(
        view,
        View {
            jobs: map(&[("pending", 2), ("assigned", 2), ("running", 1)]),
            pending: map(&[("no_nodes", 1), ("down", 1)]),
            instances: map(&[("healthy", 2), ("starting", 1)]),
            nodes: map(&[
                ("ready", 1),
                ("down", 1),
                ("paused", 1),
                ("draining", 1),
                ("ineligible", 1)
            ]),
            // web runs two releases; api's older one has stopped.
            rollouts: 1,
        }
    );
    let mut out = String::new();
    render_view(&mut out, &view);
    assert!(
        out.contains("reef_coordinator_jobs{state=\"pending\"} 2\n"),
        "{out}"
    );
    assert!(
        out.contains("reef_coordinator_pending_jobs{reason=\"gpus\"} 0\n"),
        "{out}"
    );
    assert!(
        out.contains("reef_coordinator_nodes{state=\"down\"} 1\n"),
        "{out}"
    );
    assert!(
        out.contains("reef_coordinator_rollouts_in_progress 1\n"),
        "{out}"
    );
    assert!(
        out.contains("# TYPE reef_coordinator_instances gauge\n"),
        "{out}"
    );
}
