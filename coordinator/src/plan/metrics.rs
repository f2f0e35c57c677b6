//! The cluster's gauges as the leader sees them, computed from its view
//! without I/O, and their Prometheus text: jobs by state, waiting jobs by
//! what keeps them waiting, app instances by state, nodes by state and
//! rollouts under way.

use reef_proto::alloc::AllocState;
use reef_proto::app::InstanceState;
use reef_proto::node::Eligibility;
use reef_proxy::exposition::header;
use std::collections::{BTreeMap, BTreeSet};

/// Job states a gauge reports (the live ones; ended jobs are history).
const JOB_STATES: [&str; 3] = ["pending", "assigned", "running"];
/// What keeps a job waiting, as `reason` labels.
pub const CAUSES: [&str; 11] = [
    "no_nodes",
    "down",
    "ineligible",
    "trust",
    "network",
    "replica",
    "labels",
    "cpu",
    "memory",
    "gpus",
    "other",
];
const INSTANCE_STATES: [&str; 6] = [
    "assigned",
    "preparing",
    "starting",
    "healthy",
    "unhealthy",
    "draining",
];
const NODE_STATES: [&str; 5] = ["ready", "down", "paused", "draining", "ineligible"];

/// The leader's gauges at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub jobs: BTreeMap<&'static str, u64>,
    pub pending: BTreeMap<&'static str, u64>,
    pub instances: BTreeMap<&'static str, u64>,
    pub nodes: BTreeMap<&'static str, u64>,
    pub rollouts: u64,
}

/// The gauges of a cluster whose waiting jobs say `pending_reasons`, whose
/// live job allocations are in `job_allocs`, whose live instances are
/// `instances` (app, release, state) and whose nodes are `nodes` (heard
/// from within the grace, paused by their owner, eligibility).
pub fn view<'a>(
    pending_reasons: impl Iterator<Item = &'a str>,
    job_allocs: impl Iterator<Item = &'a AllocState>,
    instances: impl Iterator<Item = (&'a str, u32, &'a InstanceState)>,
    nodes: impl Iterator<Item = (bool, bool, &'a Eligibility)>,
) -> View {
    let mut view = View::default();
    for reason in pending_reasons {
        *view.jobs.entry("pending").or_default() += 1;
        *view.pending.entry(pending_cause(reason)).or_default() += 1;
    }
    for state in job_allocs {
        let state = match state {
            AllocState::Assigned | AllocState::Accepted | AllocState::Starting => "assigned",
            AllocState::Running { .. } | AllocState::Stopping => "running",
            _ => continue,
        };
        *view.jobs.entry(state).or_default() += 1;
    }
    let mut releases: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for (app, version, state) in instances {
        if state.is_terminal() {
            continue;
        }
        let state = state.name();
        *view.instances.entry(state).or_default() += 1;
        releases.entry(app).or_default().insert(version);
    }
    // An app with live instances of two releases is rolling from one to
    // the other (or back).
    view.rollouts = releases.values().filter(|v| v.len() > 1).count() as u64;
    for (ready, paused, eligibility) in nodes {
        let state = match (ready, paused, eligibility) {
            (false, _, _) => "down",
            (_, true, _) => "paused",
            (_, _, Eligibility::Draining { .. }) => "draining",
            (_, _, Eligibility::Eligible) => "ready",
            _ => "ineligible",
        };
        *view.nodes.entry(state).or_default() += 1;
    }
    view
}

/// The main thing keeping a job waiting, from the reason the scheduler
/// gave (`no node fits: of 3 nodes, 2 down; 1 with too little free
/// memory (...)`): the cause that turned away the most nodes.
pub fn pending_cause(reason: &str) -> &'static str {
    if reason.starts_with("no nodes are registered") {
        return "no_nodes";
    }
    let Some((_, parts)) = reason.split_once(" nodes, ") else {
        return "other";
    };
    let mut best: Option<(u64, &'static str)> = None;
    for part in parts.split("; ") {
        let Some((count, rest)) = part.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        let cause = match rest {
            "down" => "down",
            r if r.starts_with("draining, paused or ineligible") => "ineligible",
            r if r.starts_with("not letting jobs use the network") => "network",
            r if r.starts_with("not ") => "trust",
            r if r.starts_with("already ran a copy") => "replica",
            r if r.starts_with("without labels") => "labels",
            r if r.starts_with("with too little free cpu") => "cpu",
            r if r.starts_with("with too little free memory") => "memory",
            r if r.starts_with("without ") => "gpus",
            _ => "other",
        };
        if best.is_none_or(|(most, _)| count > most) {
            best = Some((count, cause));
        }
    }
    best.map_or("other", |(_, cause)| cause)
}

/// The gauges, every label value included (zeros too), so a series never
/// vanishes while the leader stays.
pub fn render_view(out: &mut String, view: &View) {
    let mut gauge = |name: &str,
                     help: &str,
                     label: &str,
                     keys: &[&'static str],
                     values: &BTreeMap<&'static str, u64>| {
        header(out, name, "gauge", help);
        for key in keys {
            let value = values.get(key).copied().unwrap_or(0);
            out.push_str(&format!("{name}{{{label}=\"{key}\"}} {value}\n"));
        }
    };
    gauge(
        "reef_coordinator_jobs",
        "Live jobs by state (leader only).",
        "state",
        &JOB_STATES,
        &view.jobs,
    );
    gauge(
        "reef_coordinator_pending_jobs",
        "Jobs waiting for a node, by what turned away the most nodes (leader only).",
        "reason",
        &CAUSES,
        &view.pending,
    );
    gauge(
        "reef_coordinator_instances",
        "Live app instances by state (leader only).",
        "state",
        &INSTANCE_STATES,
        &view.instances,
    );
    gauge(
        "reef_coordinator_nodes",
        "Nodes by state (leader only).",
        "state",
        &NODE_STATES,
        &view.nodes,
    );
    header(
        out,
        "reef_coordinator_rollouts_in_progress",
        "gauge",
        "Apps with live instances of more than one release (leader only).",
    );
    out.push_str(&format!(
        "reef_coordinator_rollouts_in_progress {}\n",
        view.rollouts
    ));
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
