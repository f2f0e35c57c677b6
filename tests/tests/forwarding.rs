//! Cross-node forwarding: a node that does not run an app forwards its
//! requests to a node that does (by the routes bucket), over mutual TLS to
//! that node's peer listener, follows the app when it moves, and counts what
//! it served in `/metrics`.

use reef_tests::app::{process_in, write_app, write_named_app};
use reef_tests::probe::Prober;
use reef_tests::wiretap::{contains, Wiretap};
use reef_tests::{eventually, http, TestCluster};
use std::time::Duration;

/// The body of a successful `GET /` for `hello.test` on `port`.
async fn body(port: u16) -> Option<String> {
    http::get(port, "hello.test", "/")
        .await
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

/// Waits until every node's proxy answers from the instance with `pid`.
async fn all_served_by(cluster: &TestCluster, pid: &str) {
    for node in cluster.node_names() {
        let port = cluster.proxy_port(&node);
        eventually(
            &format!("{node} to be served by pid {pid}"),
            Duration::from_secs(10),
            || async { body(port).await.filter(|b| process_in(b) == pid) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_without_the_app_forward_to_it_and_follow_it_when_it_moves() {
    let cluster = TestCluster::start(3).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "");
    cluster.deploy(&app).await;
    let host = cluster.healthy_nodes("hello", 1).await.remove(0);
    let host_pid = process_in(&body(cluster.proxy_port(&host)).await.expect("serves"));
    let started = std::time::Instant::now();
    all_served_by(&cluster, &host_pid).await;
    println!(
        "forwarding: every node served after {:?}",
        started.elapsed()
    );

    // Move the instance: drain its node, with a client on every proxy.
    let probers: Vec<(String, Prober)> = cluster
        .node_names()
        .into_iter()
        .map(|node| {
            let prober = Prober::start(cluster.proxy_port(&node), "hello.test");
            (node, prober)
        })
        .collect();
    let out = cluster
        .cli
        .run_with_timeout(&["node", "drain", &host], Duration::from_secs(60))
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    let new_host = cluster.healthy_nodes("hello", 1).await.remove(0);
    assert_ne!(new_host, host, "the instance moved");
    let new_pid = process_in(&body(cluster.proxy_port(&new_host)).await.expect("serves"));
    assert_ne!(new_pid, host_pid);
    all_served_by(&cluster, &new_pid).await;

    for (node, prober) in probers {
        let probed = prober.finish().await;
        println!(
            "{node} during the move: {} served, {} failed, longest gap {:?}",
            probed.ok, probed.failed, probed.longest_gap
        );
        assert!(probed.ok > 0, "{node}: {probed:?}");
        assert!(
            probed.longest_gap < Duration::from_secs(5),
            "{node} was served again within a bounded time: {probed:?}"
        );
        if node == host {
            assert_eq!(probed.failed, 0, "the drained node never failed a request");
        }
    }
}

/// Deploys the one-replica test app on a two-node cluster: the node that
/// runs it, and the one that does not.
async fn deploy_on_one_of_two(cluster: &TestCluster) -> (String, String) {
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "");
    cluster.deploy(&app).await;
    let host = cluster.healthy_nodes("hello", 1).await.remove(0);
    let other = cluster
        .node_names()
        .into_iter()
        .find(|n| *n != host)
        .expect("two nodes");
    (host, other)
}

/// The value of `reef_proxy_requests_total{app="hello",class="2xx"}`.
fn served_2xx(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find(|l| l.starts_with("reef_proxy_requests_total{app=\"hello\",class=\"2xx\"}"))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_each_node_s_requests_per_app() {
    let cluster = TestCluster::start(2).await;
    let (host, other) = deploy_on_one_of_two(&cluster).await;
    let (host_port, other_port) = (cluster.proxy_port(&host), cluster.proxy_port(&other));

    // Count every success; the forwarding node may need a moment to learn the route.
    let mut forwarded = 0u64;
    eventually(
        "the other node to forward",
        Duration::from_secs(10),
        || async { body(other_port).await.map(|_| ()) },
    )
    .await;
    forwarded += 1;
    for _ in 0..6 {
        body(other_port).await.expect("forwarded");
        forwarded += 1;
    }
    for _ in 0..5 {
        body(host_port).await.expect("served");
    }

    let metrics_of = |node: &str| {
        let port = cluster.agent(node).metrics_port.expect("metrics port");
        async move {
            http::get(port, "localhost", "/metrics")
                .await
                .expect("metrics answer")
        }
    };
    let on_other = metrics_of(&other).await;
    assert_eq!(on_other.status, 200);
    let content_type = on_other
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        content_type,
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(
        served_2xx(&on_other.body),
        Some(forwarded),
        "{}",
        on_other.body
    );
    assert!(
        on_other.body.contains("reef_agent_instances_live 0"),
        "{}",
        on_other.body
    );
    // The host served its own clients and every forwarded request.
    let on_host = metrics_of(&host).await;
    assert_eq!(
        served_2xx(&on_host.body),
        Some(forwarded + 5),
        "{}",
        on_host.body
    );
    assert!(
        on_host.body.contains("reef_agent_instances_live 1"),
        "{}",
        on_host.body
    );
    assert!(
        on_host.body.contains("reef_agent_apps_served_locally 1"),
        "{}",
        on_host.body
    );
    let port = cluster.agent(&host).metrics_port.expect("metrics port");
    let elsewhere = http::get(port, "localhost", "/other")
        .await
        .expect("answer");
    assert_eq!(elsewhere.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_app_applies_its_https_redirect() {
    let cluster = TestCluster::start(2).await;
    let app = cluster.dir.path().join("app");
    write_named_app(&app, "hello", &["hello.test"], "https_redirect = true", "");
    cluster.deploy(&app).await;
    let host = cluster.healthy_nodes("hello", 1).await.remove(0);
    for node in cluster.node_names() {
        let port = cluster.proxy_port(&node);
        let redirected = eventually(
            &format!("{node} (host: {host}) to redirect to HTTPS"),
            Duration::from_secs(10),
            || async {
                http::get(port, "hello.test", "/x?y=1")
                    .await
                    .ok()
                    .filter(|r| r.status == 308)
            },
        )
        .await;
        let location = redirected
            .headers
            .iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        assert!(
            location.starts_with("https://hello.test") && location.ends_with("/x?y=1"),
            "{node}: {location}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_requests_travel_encrypted_and_a_clients_forwarding_claims_are_replaced() {
    // Each node's peer listener is on 127.0.0.1 and advertised at
    // 127.0.0.2, where a wiretap relays to it: every forwarded byte passes it.
    let ports: Vec<u16> = (0..2).map(|_| reef_tests::wait::free_port()).collect();
    let cluster = TestCluster::start_with(2, &[], |i| {
        vec![
            "--peer".into(),
            format!("127.0.0.1:{}", ports[i - 1]),
            "--advertise".into(),
            "127.0.0.2".into(),
        ]
    })
    .await;
    let mut taps = Vec::new();
    for port in &ports {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 2], *port));
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
        taps.push(Wiretap::start(listen, target).await);
    }
    let (host, other) = deploy_on_one_of_two(&cluster).await;
    let other_port = cluster.proxy_port(&other);

    // A client that claims to be someone else, and to have crossed a node.
    let request = b"GET /header/x-forwarded-for HTTP/1.1\r\nHost: hello.test\r\n\
        X-Forwarded-For: 203.0.113.9\r\nX-Reef-Hop: 1\r\nCookie: secret-cookie\r\n\
        Connection: close\r\n\r\n";
    let answer = eventually(
        "the other node to forward",
        Duration::from_secs(10),
        || async {
            http::send(other_port, request)
                .await
                .ok()
                .filter(|r| r.status == 200)
        },
    )
    .await;
    assert_eq!(answer.body, "127.0.0.1", "the instance saw the real client");

    let host_index: usize = host.trim_start_matches("node-").parse().expect("node-N");
    let wire = taps[host_index - 1].seen();
    assert!(
        wire.len() > 500,
        "the forwarded exchange went through the wiretap: {} bytes\n{}",
        wire.len(),
        cluster.logs()
    );
    for secret in [
        &b"secret-cookie"[..],
        b"hello.test",
        b"x-forwarded-for",
        b"HTTP/1.1",
    ] {
        assert!(
            !contains(&wire, secret),
            "{} crossed the wire between nodes in the clear",
            String::from_utf8_lossy(secret)
        );
    }

    // The node made its own key, which only it may read.
    use std::os::unix::fs::PermissionsExt as _;
    let key = cluster.dir.path().join(&host).join("tls/peer-key.pem");
    let mode = std::fs::metadata(&key)
        .expect("peer key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", key.display());

    // The peer listener itself answers nothing in plain HTTP.
    let host_peer = ports[host_index - 1];
    let plain = http::send(host_peer, b"GET / HTTP/1.1\r\nHost: hello.test\r\n\r\n").await;
    assert!(
        plain.as_ref().map_or(true, |r| !r.body.starts_with("v1")),
        "served over plain HTTP: {plain:?}"
    );
}
