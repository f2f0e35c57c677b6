//! Which instances a new release needs: a pure function from the app's live
//! instances and its replica count to a plan. Every live instance (of any
//! release) up to the replica count is replaced in place, on its own node, so
//! the node's proxy can swap traffic without a gap; missing replicas are
//! placed by the scheduler; extra ones are stopped.

use reef_proto::app::{Instance, InstanceState};
use reef_proto::{InstanceId, NodeId};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// (instance to leave as it is, its node).
    pub keep: Vec<(InstanceId, NodeId)>,
    /// (instance to replace, its node): start the new release beside it.
    pub replace: Vec<(InstanceId, NodeId)>,
    /// New instances to place anywhere.
    pub place: u32,
    /// Instances beyond the replica count.
    pub stop: Vec<InstanceId>,
}

/// How many replicas a new release (a deploy, or a rollback's copy) runs:
/// the manifest's count, unless the count the app runs with was changed by
/// `reef scale` and the manifest's did not change since (`previous`: the
/// count the running release's manifest said). A scaled app keeps its scale
/// across deploys until its manifest asks for another count, as Nomad's and
/// Kubernetes' users expect.
pub fn replicas_to_run(running: Option<u32>, previous: Option<u32>, manifest: u32) -> u32 {
    match (running, previous) {
        (Some(running), Some(previous)) if previous == manifest => running,
        _ => manifest,
    }
}

/// Plans the rollout of a release to `replicas` instances, given the app's
/// instances that are not finished.
pub fn plan(live: &[&Instance], replicas: u32) -> Plan {
    let (replace, stop) = split(live, replicas, |_| true);
    Plan {
        place: replicas.saturating_sub(replace.len() as u32),
        replace,
        stop,
        ..Plan::default()
    }
}

/// Plans a change in replica count (or a start) of the running release
/// `version`: its live instances are kept up to `replicas`, missing ones are
/// placed, extra ones stopped. Instances of other releases are left alone.
pub fn plan_scale(live: &[&Instance], version: u32, replicas: u32) -> Plan {
    let (keep, stop) = split(live, replicas, |i| i.version == version);
    Plan {
        place: replicas.saturating_sub(keep.len() as u32),
        keep,
        stop,
        ..Plan::default()
    }
}

/// Holds back all but the first `max_parallel` replacements (0: no limit):
/// the held-back instances keep running the old release, and
/// [`next_batch`] replaces them later, as earlier replacements settle.
pub fn limit(plan: &mut Plan, max_parallel: u32) {
    if max_parallel == 0 {
        return;
    }
    let held = plan
        .replace
        .split_off(plan.replace.len().min(max_parallel as usize));
    plan.keep.extend(held);
}

/// The instances of an older release to replace now with release `version`:
/// as many as `max_parallel` (0: all) allows, counting the replacements that
/// have not settled yet (a replacement settles once it has been healthy for
/// `min_healthy_ms`). An old instance already being replaced is not picked again.
pub fn next_batch(
    live: &[&Instance],
    version: u32,
    max_parallel: u32,
    min_healthy_ms: u64,
    now_ms: u64,
) -> Vec<(InstanceId, NodeId)> {
    let running = |i: &&&Instance| !i.state.is_terminal() && i.state != InstanceState::Draining;
    let current: Vec<&Instance> = live
        .iter()
        .filter(running)
        .copied()
        .filter(|i| i.version == version)
        .collect();
    let unsettled = current
        .iter()
        .filter(|i| {
            i.state != InstanceState::Healthy
                || now_ms.saturating_sub(i.updated_at_ms) < min_healthy_ms
        })
        .count();
    let budget = match max_parallel {
        0 => usize::MAX,
        n => (n as usize).saturating_sub(unsettled),
    };
    let mut outdated: Vec<&Instance> = live
        .iter()
        .filter(running)
        .copied()
        .filter(|i| i.version != version)
        .filter(|old| !current.iter().any(|new| new.replaces == Some(old.id)))
        .collect();
    outdated.sort_by_key(|i| (std::cmp::Reverse(rank(&i.state)), i.created_at_ms, i.id));
    outdated
        .into_iter()
        .take(budget)
        .map(|i| (i.id, i.node))
        .collect()
}

/// The live, not draining instances that `wanted` accepts, best first
/// (healthy first, then oldest, for a stable choice), split into the first
/// `replicas` (with their nodes) and the rest.
fn split(
    live: &[&Instance],
    replicas: u32,
    wanted: impl Fn(&Instance) -> bool,
) -> (Vec<(InstanceId, NodeId)>, Vec<InstanceId>) {
    let mut candidates: Vec<&Instance> = live
        .iter()
        .copied()
        .filter(|i| !i.state.is_terminal() && i.state != InstanceState::Draining && wanted(i))
        .collect();
    candidates.sort_by_key(|i| (rank(&i.state), i.created_at_ms, i.id));
    let (first, rest) = candidates.split_at(candidates.len().min(replicas as usize));
    (
        first.iter().map(|i| (i.id, i.node)).collect(),
        rest.iter().map(|i| i.id).collect(),
    )
}

pub(crate) fn rank(state: &InstanceState) -> u8 {
    match state {
        InstanceState::Healthy => 0,
        InstanceState::Unhealthy => 1,
        InstanceState::Starting => 2,
        InstanceState::Preparing => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scaled_count_is_kept_until_the_manifest_changes_its_own() {
        use super::replicas_to_run;
        // The first release: the manifest's.
        assert_eq!(replicas_to_run(None, None, 2), 2);
        // Not scaled: the manifest's, changed or not.
        assert_eq!(replicas_to_run(Some(2), Some(2), 2), 2);
        assert_eq!(replicas_to_run(Some(2), Some(2), 4), 4);
        // Scaled to 5: kept while the manifest still says 2...
        assert_eq!(replicas_to_run(Some(5), Some(2), 2), 5);
        // ...and the manifest's new count once it says another.
        assert_eq!(replicas_to_run(Some(5), Some(2), 3), 3);
        // The running release unknown: the manifest's.
        assert_eq!(replicas_to_run(Some(5), None, 2), 2);
    }

    use super::*;

    fn instance(state: InstanceState, created: u64) -> Instance {
        let mut i = crate::plan::fixtures::instance("a", 1, NodeId::new(), state);
        i.created_at_ms = created;
        i.updated_at_ms = created;
        i
    }

    #[test]
    fn a_first_deploy_places_every_replica() {
        assert_eq!(
            plan(&[], 3),
            Plan {
                keep: vec![],
                replace: vec![],
                place: 3,
                stop: vec![]
            }
        );
    }

    #[test]
    fn live_instances_are_replaced_in_place() {
        let a = instance(InstanceState::Healthy, 1);
        let b = instance(InstanceState::Healthy, 2);
        let p = plan(&[&a, &b], 2);
        assert_eq!(p.replace, vec![(a.id, a.node), (b.id, b.node)]);
        assert_eq!(p.place, 0);
        assert!(p.stop.is_empty());
    }

    #[test]
    fn scaling_down_stops_the_least_healthy() {
        let a = instance(InstanceState::Starting, 1);
        let b = instance(InstanceState::Healthy, 2);
        let p = plan(&[&a, &b], 1);
        assert_eq!(p.replace, vec![(b.id, b.node)]);
        assert_eq!(p.stop, vec![a.id]);
    }

    #[test]
    fn scaling_keeps_the_current_release_and_adds_or_stops() {
        let a = instance(InstanceState::Healthy, 1);
        let b = instance(InstanceState::Healthy, 2);
        let mut old = instance(InstanceState::Healthy, 0);
        old.version = 0;
        let up = plan_scale(&[&a, &b, &old], 1, 3);
        assert_eq!(up.keep.len(), 2);
        assert_eq!(up.place, 1);
        assert!(up.stop.is_empty() && up.replace.is_empty());
        let down = plan_scale(&[&a, &b, &old], 1, 1);
        assert_eq!(down.keep, vec![(a.id, a.node)]);
        assert_eq!(down.stop, vec![b.id], "the other release is left alone");
    }

    #[test]
    fn max_parallel_holds_back_the_rest() {
        let live: Vec<Instance> = (0..5)
            .map(|i| instance(InstanceState::Healthy, i))
            .collect();
        let refs: Vec<&Instance> = live.iter().collect();
        let mut p = plan(&refs, 5);
        limit(&mut p, 2);
        assert_eq!(p.replace.len(), 2);
        assert_eq!(p.keep.len(), 3);
        let mut all = plan(&refs, 5);
        limit(&mut all, 0);
        assert_eq!(all.replace.len(), 5);
    }

    #[test]
    fn next_batch_waits_for_replacements_to_settle() {
        let old: Vec<Instance> = (0..4)
            .map(|i| instance(InstanceState::Healthy, i))
            .collect();
        let mut new = instance(InstanceState::Starting, 10);
        new.version = 2;
        new.replaces = Some(old[0].id);
        let mut live: Vec<&Instance> = old.iter().collect();
        live.push(&new);
        // One replacement in progress with max_parallel 1: nothing more yet.
        assert!(next_batch(&live, 2, 1, 1000, 100).is_empty());
        // With 2 in parallel, one more, never the one already being replaced.
        let batch = next_batch(&live, 2, 2, 1000, 100);
        assert_eq!(batch, vec![(old[1].id, old[1].node)]);
        // Healthy but not for long enough: still unsettled.
        new.state = InstanceState::Healthy;
        new.updated_at_ms = 100;
        let mut live: Vec<&Instance> = old.iter().collect();
        live.push(&new);
        assert!(next_batch(&live, 2, 1, 1000, 500).is_empty());
        // Settled: the next one goes.
        assert_eq!(
            next_batch(&live, 2, 1, 1000, 1100),
            vec![(old[1].id, old[1].node)]
        );
        // No limit: every old instance not being replaced goes at once.
        assert_eq!(next_batch(&live, 2, 0, 0, 0).len(), 3);
    }

    #[test]
    fn next_batch_replaces_broken_instances_first() {
        let good = instance(InstanceState::Healthy, 1);
        let bad = instance(InstanceState::Unhealthy, 2);
        assert_eq!(
            next_batch(&[&good, &bad], 2, 1, 0, 0),
            vec![(bad.id, bad.node)]
        );
    }

    #[test]
    fn finished_and_draining_instances_do_not_count() {
        let a = instance(InstanceState::Stopped, 1);
        let b = instance(InstanceState::Draining, 2);
        let c = instance(InstanceState::Failed { reason: "x".into() }, 3);
        assert_eq!(plan(&[&a, &b, &c], 2).place, 2);
    }
}
