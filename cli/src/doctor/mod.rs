//! `reef doctor`: checks the things that break real installs, across the
//! whole cluster, and says how to fix each. It asks every node for its
//! report (`reef.doctor.<node>`: its clock, version, disk, sandbox and
//! public ports), then has every node that serves apps try the others'
//! ports 80 and 443; it reads the servers' streams, the certificates and
//! the apps' domains, resolves each domain here, and concludes
//! ([`findings`]). It exits 1 when any check fails.

mod findings;

use crate::client::{self, call, connect};
use anyhow::{anyhow, bail, Result};
use findings::{DomainSeen, Finding, Level, NodeSeen, Seen};
use reef_proto::api::{ApiRequest, ApiResponse, NodeState, NodeStatus};
use reef_proto::doctor::{DoctorReport, DoctorRequest};
use reef_proto::node::TrustClass;
use reef_proto::{decode, encode, subjects};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// How long a node may take to answer (its probes take at most 2 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(6);
/// How long resolving one domain may take.
const RESOLVE_WITHIN: Duration = Duration::from_secs(5);

pub async fn doctor(nats: &client::Nats, json: bool) -> Result<ExitCode> {
    let conn = connect(nats).await?;
    if conn.who.role != reef_proto::roles::Role::Admin {
        bail!(
            "reef doctor asks every node directly, which only the admin's credential may \
             (this one is {}'s, a {})",
            conn.who.name,
            conn.who.role
        );
    }
    let ApiResponse::Nodes(nodes) = call(&conn, ApiRequest::ListNodes).await? else {
        bail!("unexpected reply to node.list");
    };
    // First round: where every node's ports are.
    let first = ask_all(&conn, &nodes, |_| Vec::new()).await;
    let targets: Vec<(reef_proto::NodeId, Vec<SocketAddr>)> = first
        .iter()
        .flatten()
        .map(|(report, _, _)| {
            (
                report.node,
                [report.http, report.https].into_iter().flatten().collect(),
            )
        })
        .collect();
    // Second round: every node that serves apps tries the others' ports.
    let second = ask_all(&conn, &nodes, |node| {
        if node.record.trust != TrustClass::Dedicated {
            return Vec::new();
        }
        targets
            .iter()
            .filter(|(id, _)| *id != node.record.id)
            .flat_map(|(_, addrs)| addrs.iter().copied())
            .collect()
    })
    .await;
    let ApiResponse::Servers { servers, streams } = call(&conn, ApiRequest::ListServers).await?
    else {
        bail!("unexpected reply to server.list");
    };
    let ApiResponse::Certificates(certs) = call(&conn, ApiRequest::ListCertificates).await? else {
        bail!("unexpected reply to cert.list");
    };
    let ApiResponse::Apps(apps) = call(&conn, ApiRequest::ListApps).await? else {
        bail!("unexpected reply to app.list");
    };
    let mut domains = Vec::new();
    for app in &apps {
        for domain in &app.release.spec.domains {
            // DNS is about hosts: a path route shares its host's records,
            // and a wildcard has no name to look up.
            let route = reef_proto::route_domain::RouteDomain::split(domain);
            let seen = |d: &DomainSeen| d.domain == route.host && d.app == app.record.name;
            if route.is_wildcard() || domains.iter().any(seen) {
                continue;
            }
            let domain = route.host;
            domains.push(DomainSeen {
                domain: domain.clone(),
                app: app.record.name.clone(),
                resolved: resolve(&domain).await,
            });
        }
    }
    let seen = Seen {
        nodes: nodes
            .iter()
            .zip(second)
            .map(|(node, report)| NodeSeen {
                name: node.record.name.clone(),
                state: node.state,
                trust: node.record.trust,
                version: node.record.version.clone(),
                last_seen_ms: node.last_seen_ms,
                report,
            })
            .collect(),
        servers: servers.len(),
        streams,
        certs,
        domains,
        now_ms: reef_proto::now_ms(),
    };
    let found = findings::conclude(&seen);
    let failed = found.iter().any(|f| f.level == Level::Fail);
    if json {
        crate::views::print_json(&serde_json::to_value(&found)?)?;
    } else {
        print(&found);
    }
    Ok(match failed {
        true => ExitCode::FAILURE,
        false => ExitCode::SUCCESS,
    })
}

fn print(found: &[Finding]) {
    for finding in found {
        let mark = match finding.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{mark}  {:<8}  {}", finding.check, finding.message);
        if !finding.fix.is_empty() {
            println!("      {:<8}  fix: {}", "", finding.fix);
        }
    }
    let count = |level| found.iter().filter(|f| f.level == level).count();
    println!();
    println!(
        "{} failed, {}, {} passed",
        count(Level::Fail),
        crate::views::counted(count(Level::Warn), "warning", "warnings"),
        count(Level::Ok)
    );
}

/// Each ready node's report (None for a node down or silent), the
/// doctor's clock halfway through the request, and the round trip, with
/// `probe(node)` for it to try.
async fn ask_all(
    conn: &client::Conn,
    nodes: &[NodeStatus],
    probe: impl Fn(&NodeStatus) -> Vec<SocketAddr>,
) -> Vec<Option<(DoctorReport, u64, u64)>> {
    let asks = nodes.iter().map(|node| {
        let request = DoctorRequest { probe: probe(node) };
        async move {
            if node.state != NodeState::Ready {
                return None;
            }
            ask(conn, node, &request).await.ok()
        }
    });
    futures::future::join_all(asks).await
}

async fn ask(
    conn: &client::Conn,
    node: &NodeStatus,
    request: &DoctorRequest,
) -> Result<(DoctorReport, u64, u64)> {
    let payload = encode(request)?;
    let sent = reef_proto::now_ms();
    let started = std::time::Instant::now();
    let reply = tokio::time::timeout(
        ANSWER_WITHIN,
        conn.request(subjects::doctor(node.record.id), payload),
    )
    .await
    .map_err(|_| anyhow!("{} did not answer", node.record.name))?
    .map_err(|e| anyhow!("{}: {e}", node.record.name))?;
    let rtt = started.elapsed().as_millis() as u64;
    let report = decode::<DoctorReport>(&reply.payload)?;
    if report.node != node.record.id {
        bail!("{} answered as another node", node.record.name);
    }
    Ok((report, sent + rtt / 2, rtt))
}

/// The addresses `domain` resolves to here.
async fn resolve(domain: &str) -> Result<Vec<std::net::IpAddr>, String> {
    let name = format!("{domain}:80");
    let lookup = tokio::task::spawn_blocking(move || {
        use std::net::ToSocketAddrs as _;
        name.to_socket_addrs()
            .map(|addrs| addrs.map(|addr| addr.ip()).collect::<Vec<_>>())
    });
    match tokio::time::timeout(RESOLVE_WITHIN, lookup).await {
        Ok(Ok(Ok(mut ips))) => {
            ips.sort();
            ips.dedup();
            Ok(ips)
        }
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", RESOLVE_WITHIN.as_secs())),
    }
}
