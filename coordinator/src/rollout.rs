//! Which instances a new release needs: a pure function from the app's live
//! instances and its replica count to a plan. Every live instance (of any
//! release) up to the replica count is replaced in place, on its own node, so
//! the node's proxy can swap traffic without a gap; missing replicas are
//! placed by the scheduler; extra ones are stopped.

use reef_proto::app::{Instance, InstanceState};
use reef_proto::{AllocId, NodeId};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// (instance to leave as it is, its node).
    pub keep: Vec<(AllocId, NodeId)>,
    /// (instance to replace, its node): start the new release beside it.
    pub replace: Vec<(AllocId, NodeId)>,
    /// New instances to place anywhere.
    pub place: u32,
    /// Instances beyond the replica count.
    pub stop: Vec<AllocId>,
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

/// The live, not draining instances that `wanted` accepts, best first
/// (healthy first, then oldest, for a stable choice), split into the first
/// `replicas` (with their nodes) and the rest.
fn split(
    live: &[&Instance],
    replicas: u32,
    wanted: impl Fn(&Instance) -> bool,
) -> (Vec<(AllocId, NodeId)>, Vec<AllocId>) {
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

fn rank(state: &InstanceState) -> u8 {
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
    use super::*;

    fn instance(state: InstanceState, created: u64) -> Instance {
        Instance {
            id: AllocId::new(),
            app: "a".into(),
            version: 1,
            node: NodeId::new(),
            state,
            port: None,
            replaces: None,
            relieves: None,
            restarts: 0,
            message: None,
            event_seq: 0,
            created_at_ms: created,
            updated_at_ms: created,
        }
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
    fn finished_and_draining_instances_do_not_count() {
        let a = instance(InstanceState::Stopped, 1);
        let b = instance(InstanceState::Draining, 2);
        let c = instance(InstanceState::Failed { reason: "x".into() }, 3);
        assert_eq!(plan(&[&a, &b, &c], 2).place, 2);
    }
}
