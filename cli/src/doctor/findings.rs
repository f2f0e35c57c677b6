//! What `reef doctor` concludes from what it gathered: a pure function of
//! the nodes (with their reports), the servers and their streams, the
//! certificates and the apps' domains as DNS resolves them. Every problem
//! names what is wrong and the fix; checks that pass say so in one line.

use crate::views::counted;
use reef_proto::api::NodeState;
use reef_proto::certs::CertStatus;
use reef_proto::doctor::DoctorReport;
use reef_proto::node::TrustClass;
use reef_proto::servers::StreamHealth;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A node and what it answered.
#[derive(Clone, Debug)]
pub struct NodeSeen {
    pub name: String,
    pub state: NodeState,
    pub trust: TrustClass,
    pub version: String,
    pub last_seen_ms: u64,
    /// Its report, and the doctor's clock halfway through the request and
    /// how long the round trip took.
    pub report: Option<(DoctorReport, u64, u64)>,
}

/// An app's domain as DNS resolved it.
#[derive(Clone, Debug)]
pub struct DomainSeen {
    pub domain: String,
    pub app: String,
    pub resolved: Result<Vec<IpAddr>, String>,
}

/// Everything gathered.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub nodes: Vec<NodeSeen>,
    pub servers: usize,
    pub streams: Vec<StreamHealth>,
    pub certs: Vec<CertStatus>,
    pub domains: Vec<DomainSeen>,
    pub now_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One conclusion.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub level: Level,
    pub message: String,
    /// What to do about it (empty when nothing is wrong).
    pub fix: String,
}

fn found(check: &'static str, level: Level, message: String, fix: impl Into<String>) -> Finding {
    Finding {
        check,
        level,
        message,
        fix: fix.into(),
    }
}

/// A clock this far from the doctor's, beyond the round trip, is wrong.
pub const CLOCK_SKEW_MS: u64 = 2_000;
/// Certificates this close to expiry fail, and this close warn.
const CERT_FAIL_MS: u64 = 7 * 24 * 3600 * 1000;
const CERT_WARN_MS: u64 = 21 * 24 * 3600 * 1000;
const GIB: u64 = 1 << 30;

/// Every conclusion, problems first within each check.
pub fn conclude(seen: &Seen) -> Vec<Finding> {
    let mut out = Vec::new();
    nodes(seen, &mut out);
    ports(seen, &mut out);
    dns(seen, &mut out);
    clocks(seen, &mut out);
    streams(seen, &mut out);
    certificates(seen, &mut out);
    disks(seen, &mut out);
    sandboxes(seen, &mut out);
    versions(seen, &mut out);
    out
}

fn ok_unless_found(out: &mut Vec<Finding>, check: &'static str, before: usize, fine: String) {
    if out[before..].iter().all(|f| f.check != check) {
        out.push(found(check, Level::Ok, fine, ""));
    }
}

fn reports(seen: &Seen) -> impl Iterator<Item = (&NodeSeen, &DoctorReport, u64, u64)> {
    seen.nodes.iter().filter_map(|node| {
        node.report
            .as_ref()
            .map(|(report, mid, rtt)| (node, report, *mid, *rtt))
    })
}

fn nodes(seen: &Seen, out: &mut Vec<Finding>) {
    let before = out.len();
    for node in &seen.nodes {
        match (&node.state, &node.report) {
            (NodeState::Down, _) => out.push(found(
                "nodes",
                Level::Warn,
                format!(
                    "{} is down (last heard {} ago)",
                    node.name,
                    ago(seen.now_ms, node.last_seen_ms)
                ),
                format!(
                    "start its agent (systemctl start reef-agent, or reef-server on a server), \
                     or forget it: reef node rm {}",
                    node.name
                ),
            )),
            (NodeState::Ready, None) => out.push(found(
                "nodes",
                Level::Warn,
                format!("{} is up but did not answer the doctor", node.name),
                "an older reef answers no doctor: upgrade it (docs/operations.md, Upgrades)",
            )),
            _ => {}
        }
    }
    let up = seen
        .nodes
        .iter()
        .filter(|n| n.state == NodeState::Ready)
        .count();
    ok_unless_found(
        out,
        "nodes",
        before,
        format!("{}, all up and answering", counted(up, "node", "nodes")),
    );
}

fn ports(seen: &Seen, out: &mut Vec<Finding>) {
    let before = out.len();
    // Target address → (its node, which port), from every report.
    let mut targets = BTreeMap::new();
    for (node, report, _, _) in reports(seen) {
        for (addr, port) in [(report.http, "80 (HTTP)"), (report.https, "443 (HTTPS)")] {
            if let Some(addr) = addr {
                targets.insert(addr, (node.name.as_str(), port));
            }
        }
    }
    // Target → the nodes that could not reach it, and how they failed.
    let mut blocked: BTreeMap<std::net::SocketAddr, Vec<(String, String)>> = BTreeMap::new();
    let mut tried = 0;
    for (node, report, _, _) in reports(seen) {
        for probe in &report.probes {
            tried += 1;
            if let Some(error) = &probe.error {
                blocked
                    .entry(probe.addr)
                    .or_default()
                    .push((node.name.clone(), error.clone()));
            }
        }
    }
    for (addr, from) in blocked {
        let (name, port) = targets.get(&addr).copied().unwrap_or(("?", "?"));
        let who: Vec<String> = from.iter().map(|(n, _)| n.clone()).collect();
        out.push(found(
            "ports",
            Level::Fail,
            format!(
                "port {port} of {name} ({addr}) is not reachable from {}: {}",
                who.join(", "),
                from[0].1
            ),
            format!(
                "open TCP {} to {name} in its firewall and the provider's (ufw allow {}/tcp), \
                 and check reef listens there",
                addr.port(),
                addr.port()
            ),
        ));
    }
    ok_unless_found(
        out,
        "ports",
        before,
        format!("every node reaches the others' ports 80 and 443 ({tried} tried)"),
    );
}

/// Whether `domain` is only ever local (it cannot point at a node).
fn local_only(domain: &str) -> bool {
    domain == "localhost" || domain.ends_with(".localhost")
}

fn dns(seen: &Seen, out: &mut Vec<Finding>) {
    let before = out.len();
    let mut node_ips: Vec<IpAddr> = reports(seen)
        .flat_map(|(_, report, _, _)| [report.http, report.https])
        .flatten()
        .map(|addr| addr.ip())
        .collect();
    node_ips.sort();
    node_ips.dedup();
    let listed = node_ips
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let mut checked = 0;
    for domain in &seen.domains {
        if local_only(&domain.domain) {
            continue;
        }
        checked += 1;
        match &domain.resolved {
            Err(e) => out.push(found(
                "dns",
                Level::Fail,
                format!(
                    "{} (app {}) does not resolve: {e}",
                    domain.domain, domain.app
                ),
                format!(
                    "add an A record for {} pointing at one of: {listed}",
                    domain.domain
                ),
            )),
            Ok(ips) if !ips.iter().any(|ip| node_ips.contains(ip)) => {
                let got: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
                out.push(found(
                    "dns",
                    Level::Fail,
                    format!(
                        "{} (app {}) points at {}, which is no node of this cluster",
                        domain.domain,
                        domain.app,
                        got.join(", ")
                    ),
                    format!(
                        "point the A record of {} at one of: {listed}",
                        domain.domain
                    ),
                ))
            }
            Ok(_) => {}
        }
    }
    ok_unless_found(
        out,
        "dns",
        before,
        format!(
            "{}, each pointing at a node",
            counted(checked, "domain", "domains")
        ),
    );
}

fn clocks(seen: &Seen, out: &mut Vec<Finding>) {
    let before = out.len();
    for (node, report, mid, rtt) in reports(seen) {
        let skew = report.now_ms.abs_diff(mid);
        if skew > CLOCK_SKEW_MS + rtt / 2 {
            let way = if report.now_ms > mid {
                "ahead"
            } else {
                "behind"
            };
            out.push(found(
                "clock",
                Level::Fail,
                format!(
                    "{}'s clock is {:.1}s {way} of this machine's",
                    node.name,
                    skew as f64 / 1000.0
                ),
                format!(
                    "turn time synchronisation on on {} (timedatectl set-ntp true) and on this machine",
                    node.name
                ),
            ));
        }
    }
    ok_unless_found(
        out,
        "clock",
        before,
        format!(
            "every clock within {}s of this machine's",
            CLOCK_SKEW_MS / 1000
        ),
    );
}

fn streams(seen: &Seen, out: &mut Vec<Finding>) {
    let before = out.len();
    for problem in seen.streams.iter().filter_map(StreamHealth::problem) {
        out.push(found(
            "nats",
            Level::Fail,
            problem,
            "a server is down or cut off from the others: see `reef servers`, and start it \
             again (systemctl restart reef-server)",
        ));
    }
    if seen.servers == 2 {
        out.push(found(
            "nats",
            Level::Warn,
            "two servers: losing either one stops the cluster's control plane".into(),
            "add a third server (reef join --server TOKEN); with three, any one may fail",
        ));
    }
    let copies = seen.streams.iter().map(|s| s.replicas).min().unwrap_or(0);
    ok_unless_found(
        out,
        "nats",
        before,
        format!(
            "{} with {copies} copies each, all current",
            counted(seen.streams.len(), "stream", "streams")
        ),
    );
}

fn certificates(seen: &Seen, out: &mut Vec<Finding>) {
    let before = out.len();
    for cert in &seen.certs {
        let name = cert.domains.join(", ");
        if let Some(error) = &cert.last_error {
            out.push(found(
                "certs",
                Level::Fail,
                format!("{name}: the last order or renewal failed: {error}"),
                "the CA must reach port 80 of a node at the domain's address: fix DNS and the \
                 firewall (see dns and ports above); the leader tries again by itself",
            ));
            continue;
        }
        let Some(not_after) = cert.not_after_ms else {
            continue;
        };
        let left = not_after.saturating_sub(seen.now_ms);
        let level = match left {
            l if l < CERT_FAIL_MS => Level::Fail,
            l if l < CERT_WARN_MS => Level::Warn,
            _ => continue,
        };
        out.push(found(
            "certs",
            level,
            format!(
                "{name} expires in {}",
                reef_proto::units::format_duration(std::time::Duration::from_millis(left))
            ),
            "ACME certificates renew 30 days before they end: see its last error; a \
             certificate from files needs a new one (reef certs add)",
        ));
    }
    ok_unless_found(
        out,
        "certs",
        before,
        format!(
            "{}, none close to expiry",
            counted(seen.certs.len(), "certificate", "certificates")
        ),
    );
}

fn disks(seen: &Seen, out: &mut Vec<Finding>) {
    let before = out.len();
    for (node, report, _, _) in reports(seen) {
        let (free, total) = (report.disk_free_bytes, report.disk_total_bytes);
        if total == 0 {
            continue;
        }
        let share = free as f64 / total as f64;
        let level = if share < 0.05 || free < GIB {
            Level::Fail
        } else if share < 0.15 {
            Level::Warn
        } else {
            continue;
        };
        out.push(found(
            "disk",
            level,
            format!(
                "{}: {} free of {} on {}",
                node.name,
                reef_proto::units::format_size(free),
                reef_proto::units::format_size(total),
                report.data_dir
            ),
            "free space there: old releases and logs are kept within limits, but a full disk \
             stops JetStream and new deploys",
        ));
    }
    ok_unless_found(out, "disk", before, "enough free disk on every node".into());
}

fn sandboxes(seen: &Seen, out: &mut Vec<Finding>) {
    let before = out.len();
    for (node, report, _, _) in reports(seen) {
        if !report.sandboxed {
            out.push(found(
                "sandbox",
                match node.trust {
                    TrustClass::Contributed => Level::Fail,
                    TrustClass::Dedicated => Level::Warn,
                },
                format!(
                    "{} runs work without the sandbox ({})",
                    node.name, report.sandbox
                ),
                "install bubblewrap (apt-get install bubblewrap) and start its agent without \
                 --sandbox off",
            ));
        }
    }
    ok_unless_found(
        out,
        "sandbox",
        before,
        "every node runs work in the sandbox".into(),
    );
}

fn versions(seen: &Seen, out: &mut Vec<Finding>) {
    let mut by_version: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in seen.nodes.iter().filter(|n| n.state == NodeState::Ready) {
        by_version
            .entry(node.version.as_str())
            .or_default()
            .push(&node.name);
    }
    if by_version.len() > 1 {
        let listed: Vec<String> = by_version
            .iter()
            .map(|(version, nodes)| format!("{version} ({})", nodes.join(", ")))
            .collect();
        out.push(found(
            "versions",
            Level::Warn,
            format!("nodes run different reef versions: {}", listed.join(", ")),
            "finish the upgrade: docs/operations.md, Upgrades",
        ));
    } else if let Some(version) = by_version.keys().next() {
        out.push(found(
            "versions",
            Level::Ok,
            format!("every node runs reef {version}"),
            "",
        ));
    }
}

fn ago(now_ms: u64, then_ms: u64) -> String {
    reef_proto::units::format_duration(std::time::Duration::from_millis(
        now_ms.saturating_sub(then_ms),
    ))
}

#[cfg(test)]
#[path = "findings_tests.rs"]
mod tests;
