//! Where an app's managed service runs. A service is placed once, on a
//! dedicated node that has its version installed, and then pinned: its
//! data lives there, so a later deploy, an agent restart or the node going
//! away never moves it. While its node is down the service waits for it
//! and says so; moving the data is left to the operator (a backup and a
//! restore), never done behind their back.

use reef_proto::node::TrustClass;
use reef_proto::services::{ServiceDesired, ServiceKind, ServiceRecord, ServiceSpec};
use reef_proto::NodeId;
use std::collections::BTreeSet;

/// What the decision needs to know of a node.
#[derive(Clone, Debug)]
pub(crate) struct ServiceNode<'a> {
    pub id: NodeId,
    pub name: &'a str,
    pub trust: TrustClass,
    /// Heard from within the grace period.
    pub ready: bool,
    /// Takes new work (not draining, drained or marked ineligible).
    pub eligible: bool,
    /// The major versions of the kind installed there.
    pub versions: &'a [u32],
    /// Services already pinned to it.
    pub services: u32,
}

/// Where the service goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// It stays where its data is; `ready` says whether that node is up now.
    Pinned { node: NodeId, ready: bool },
    /// A new service (or one whose data was deleted), placed here.
    New { node: NodeId },
}

/// Decides where `spec`'s service runs, given what the services bucket
/// holds for it (`existing`) and the cluster's nodes.
pub(crate) fn place(
    app: &str,
    spec: &ServiceSpec,
    existing: Option<&ServiceRecord>,
    nodes: &[ServiceNode<'_>],
) -> Result<Placement, String> {
    let kind = spec.kind.name();
    if let Some(record) = existing.filter(|r| r.desired != ServiceDesired::Deleted) {
        let node = nodes.iter().find(|n| n.id == record.node);
        let name = node.map_or_else(|| record.node.to_string(), |n| n.name.to_string());
        if record.version != spec.version {
            return Err(format!(
                "{kind} of {app} runs version {} on node {name}, and its data is of that version: \
                 a new major version needs a dump and a restore (or reef destroy {app} \
                 --delete-data to start afresh)",
                record.version
            ));
        }
        return Ok(Placement::Pinned {
            node: record.node,
            ready: node.is_some_and(|n| n.ready),
        });
    }
    let fits = |n: &&ServiceNode<'_>| {
        n.trust == TrustClass::Dedicated
            && n.ready
            && n.eligible
            && n.versions.contains(&spec.version)
    };
    if let Some(best) = nodes.iter().filter(fits).min_by_key(|n| (n.services, n.id)) {
        return Ok(Placement::New { node: best.id });
    }
    let installed: Vec<String> = nodes
        .iter()
        .filter(|n| n.trust == TrustClass::Dedicated && !n.versions.is_empty())
        .map(|n| {
            let versions: Vec<String> = n.versions.iter().map(u32::to_string).collect();
            let mut line = format!("{} has {}", n.name, versions.join(", "));
            if !n.ready {
                line.push_str(" but is down");
            } else if !n.eligible {
                line.push_str(" but takes no new work");
            }
            line
        })
        .collect();
    let found = if installed.is_empty() {
        format!("no dedicated node has {kind} installed")
    } else {
        installed.join("; ")
    };
    Err(format!(
        "cannot place {kind} {} for {app}: it needs a ready dedicated node with {kind} {} installed \
         (Debian's postgresql-{}); {found}",
        spec.version, spec.version, spec.version
    ))
}

/// The first port tried for a new service, and how many follow it: above
/// the usual fixed ports and below the kernel's ephemeral range, so a port
/// an instance was handed never collides with one.
pub(crate) const PORTS: std::ops::Range<u16> = 20_000..30_000;

/// The port of a new service on a node whose services use `used`: the
/// first free one from a spot chosen by `seed` (random in the driver), so
/// that clusters sharing a machine rarely pick the same.
pub(crate) fn choose_port(used: &BTreeSet<u16>, seed: u64) -> Option<u16> {
    let span = u64::from(PORTS.end - PORTS.start);
    (0..span)
        .map(|i| PORTS.start + ((seed + i) % span) as u16)
        .find(|port| !used.contains(port))
}

/// What `reef status` says of a service: what should become of it,
/// whether its node is up, and what that node last reported of it
/// (`reported`; None: nothing yet, it is being started).
pub(crate) fn state(
    record: &ServiceRecord,
    node_name: Option<&str>,
    ready: bool,
    reported: Option<&str>,
) -> String {
    let name = node_name.map_or_else(|| record.node.to_string(), str::to_string);
    match record.desired {
        ServiceDesired::Running if ready => reported.unwrap_or("starting").into(),
        ServiceDesired::Running => format!(
            "waiting: node {name} is down (its data is there; the {} comes back with the node)",
            record.kind.name()
        ),
        other => other.name().into(),
    }
}

/// The kind's services, one per app: used to spread new ones.
pub(crate) fn pinned_count(records: &[ServiceRecord], node: NodeId) -> u32 {
    records
        .iter()
        .filter(|r| r.node == node && r.desired != ServiceDesired::Deleted)
        .count() as u32
}

/// Ports in use on `node` by services whose data is kept there.
pub(crate) fn ports_on(records: &[ServiceRecord], node: NodeId) -> BTreeSet<u16> {
    records
        .iter()
        .filter(|r| r.node == node && r.desired != ServiceDesired::Deleted)
        .map(|r| r.port)
        .collect()
}

/// The versions of `kind` a node reported installed.
pub(crate) fn versions_of(kind: ServiceKind, record: &reef_proto::node::NodeRecord) -> &[u32] {
    match kind {
        ServiceKind::Postgres => &record.postgres_versions,
        ServiceKind::Nats => &[],
    }
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
