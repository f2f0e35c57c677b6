use super::*;
use reef_proto::doctor::Probe;

const NOW: u64 = 1_800_000_000_000;

fn report(ip: &str, probes: Vec<Probe>) -> DoctorReport {
    DoctorReport {
        node: reef_proto::NodeId::new(),
        version: "0.1.0".into(),
        now_ms: NOW,
        http: Some(format!("{ip}:80").parse().expect("addr")),
        https: Some(format!("{ip}:443").parse().expect("addr")),
        data_dir: "/var/lib/reef".into(),
        disk_free_bytes: 50 * GIB,
        disk_total_bytes: 100 * GIB,
        sandboxed: true,
        sandbox: "bubblewrap".into(),
        probes,
    }
}

fn node(name: &str, ip: &str, probes: Vec<Probe>) -> NodeSeen {
    NodeSeen {
        name: name.into(),
        state: NodeState::Ready,
        trust: TrustClass::Dedicated,
        version: "0.1.0".into(),
        last_seen_ms: NOW,
        report: Some((report(ip, probes), NOW, 4)),
    }
}

fn probe(addr: &str, error: Option<&str>) -> Probe {
    Probe {
        addr: addr.parse().expect("addr"),
        error: error.map(str::to_string),
        millis: 1,
    }
}

/// Two healthy nodes that reach each other, three servers, one domain.
fn healthy() -> Seen {
    Seen {
        nodes: vec![
            node(
                "a",
                "10.0.0.1",
                vec![probe("10.0.0.2:80", None), probe("10.0.0.2:443", None)],
            ),
            node(
                "b",
                "10.0.0.2",
                vec![probe("10.0.0.1:80", None), probe("10.0.0.1:443", None)],
            ),
        ],
        servers: 3,
        streams: vec![StreamHealth {
            name: "KV_reef-apps".into(),
            replicas: 3,
            leader: Some("a".into()),
            followers: vec![("b".into(), true), ("c".into(), true)],
        }],
        certs: vec![CertStatus {
            domains: vec!["app.example.com".into()],
            source: reef_proto::certs::CertSource::Acme,
            not_after_ms: Some(NOW + 60 * 24 * 3600 * 1000),
            nodes: 2,
            last_error: None,
        }],
        domains: vec![DomainSeen {
            domain: "app.example.com".into(),
            app: "web".into(),
            resolved: Ok(vec!["10.0.0.2".parse().expect("ip")]),
        }],
        now_ms: NOW,
    }
}

fn problems(seen: &Seen) -> Vec<Finding> {
    conclude(seen)
        .into_iter()
        .filter(|f| f.level != Level::Ok)
        .collect()
}

#[test]
fn a_healthy_cluster_passes_every_check_once() {
    let findings = conclude(&healthy());
    assert!(
        findings.iter().all(|f| f.level == Level::Ok),
        "{findings:#?}"
    );
    let checks: Vec<&str> = findings.iter().map(|f| f.check).collect();
    assert_eq!(
        checks,
        ["nodes", "ports", "dns", "clock", "nats", "certs", "disk", "sandbox", "versions"]
    );
}

#[test]
fn a_blocked_port_names_the_node_the_port_and_who_cannot_reach_it() {
    let mut seen = healthy();
    seen.nodes[0].report.as_mut().expect("report").0.probes[0] =
        probe("10.0.0.2:80", Some("no answer within 2s"));
    let found = problems(&seen);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].check, "ports");
    assert_eq!(found[0].level, Level::Fail);
    assert!(
        found[0]
            .message
            .contains("port 80 (HTTP) of b (10.0.0.2:80)"),
        "{found:?}"
    );
    assert!(found[0].message.contains("from a"), "{found:?}");
    assert!(found[0].fix.contains("ufw allow 80/tcp"), "{found:?}");
}

#[test]
fn a_domain_pointing_elsewhere_or_nowhere_fails_with_the_nodes_to_point_at() {
    let mut seen = healthy();
    seen.domains[0].resolved = Ok(vec!["192.0.2.55".parse().expect("ip")]);
    seen.domains.push(DomainSeen {
        domain: "nowhere.example.com".into(),
        app: "web".into(),
        resolved: Err("no such host".into()),
    });
    seen.domains.push(DomainSeen {
        domain: "web.localhost".into(),
        app: "web".into(),
        resolved: Ok(vec!["127.0.0.1".parse().expect("ip")]),
    });
    let found = problems(&seen);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].message.contains("points at 192.0.2.55"),
        "{found:?}"
    );
    assert!(found[0].fix.contains("10.0.0.1, 10.0.0.2"), "{found:?}");
    assert!(found[1].message.contains("does not resolve"), "{found:?}");
}

#[test]
fn a_clock_off_by_more_than_the_round_trip_allows_fails() {
    let mut seen = healthy();
    seen.nodes[1].report.as_mut().expect("report").0.now_ms = NOW + CLOCK_SKEW_MS + 1;
    assert!(problems(&seen).is_empty(), "within the round trip's slack");
    seen.nodes[1].report.as_mut().expect("report").0.now_ms = NOW - 42_000;
    let found = problems(&seen);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].message.contains("42.0s behind"), "{found:?}");
}

#[test]
fn streams_servers_certificates_disks_sandboxes_and_versions() {
    let mut seen = healthy();
    seen.streams[0].followers[1].1 = false;
    seen.servers = 2;
    seen.certs[0].last_error = Some("connection refused".into());
    seen.certs.push(CertStatus {
        domains: vec!["old.example.com".into()],
        source: reef_proto::certs::CertSource::File,
        not_after_ms: Some(NOW + 3 * 24 * 3600 * 1000),
        nodes: 2,
        last_error: None,
    });
    {
        let (report, _, _) = seen.nodes[0].report.as_mut().expect("report");
        report.disk_free_bytes = GIB / 2;
        report.sandboxed = false;
    }
    seen.nodes[1].version = "0.2.0".into();
    let found = problems(&seen);
    let by = |check: &str| found.iter().filter(|f| f.check == check).count();
    assert_eq!(by("nats"), 2, "{found:#?}");
    assert_eq!(by("certs"), 2, "{found:#?}");
    assert_eq!(by("disk"), 1, "{found:#?}");
    assert_eq!(by("sandbox"), 1, "{found:#?}");
    assert_eq!(by("versions"), 1, "{found:#?}");
    assert!(found
        .iter()
        .any(|f| f.message.contains("the copy on c is not current")));
    assert!(found
        .iter()
        .any(|f| f.message.contains("0.1.0 (a), 0.2.0 (b)")));
    // A contributed node without the sandbox is a failure, not a warning.
    seen.nodes[0].trust = TrustClass::Contributed;
    let sandbox = problems(&seen)
        .into_iter()
        .find(|f| f.check == "sandbox")
        .expect("sandbox");
    assert_eq!(sandbox.level, Level::Fail);
}

#[test]
fn a_down_or_silent_node_is_named() {
    let mut seen = healthy();
    seen.nodes[1].state = NodeState::Down;
    seen.nodes[1].last_seen_ms = NOW - 90_000;
    seen.nodes[1].report = None;
    seen.nodes.push(NodeSeen {
        report: None,
        ..node("c", "10.0.0.3", vec![])
    });
    let found = problems(&seen);
    let nodes: Vec<&Finding> = found.iter().filter(|f| f.check == "nodes").collect();
    assert_eq!(nodes.len(), 2, "{found:#?}");
    assert!(
        nodes[0]
            .message
            .contains("b is down (last heard 1m30s ago)"),
        "{nodes:?}"
    );
    assert!(
        nodes[1].message.contains("c is up but did not answer"),
        "{nodes:?}"
    );
}
