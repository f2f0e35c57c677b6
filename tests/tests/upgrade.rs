//! Upgrades: the wire protocol's one rule (every process of a cluster
//! speaks the same protocol) enforced with a clear answer, and the rolling
//! procedure of docs/operations.md (drain a node, swap and restart it, wait
//! until it is ready, let it take work again, then the next) run under a
//! stream of requests, none of which fails.

use reef_proto::api::{ApiReply, ApiRequest};
use reef_proto::roles::Role;
use reef_proto::{decode, encode, subjects};
use reef_tests::app::write_app;
use reef_tests::{eventually, http, TestCluster};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `request` encoded as a build of protocol `version` would.
fn of_protocol(request: &ApiRequest, version: u8) -> Vec<u8> {
    let mut bytes = encode(request).expect("encode").to_vec();
    // After the magic: the version, a postcard varint (1 byte below 128).
    assert_eq!(bytes[4], reef_proto::envelope::VERSION as u8);
    bytes[4] = version;
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_of_another_protocol_is_told_which_and_what_to_do() {
    let cluster = TestCluster::start(1).await;
    let creds = cluster.nats.url.admin_creds();
    let client = async_nats::ConnectOptions::with_credentials_file(&creds)
        .await
        .expect("creds")
        .add_root_certificates(cluster.nats.url.ca())
        .require_tls(true)
        .custom_inbox_prefix(subjects::inbox_prefix(Role::Admin, "admin"))
        .connect(cluster.nats.url.to_string())
        .await
        .expect("connect");
    let subject = subjects::api(Role::Admin, "admin", subjects::verbs::NODE_LIST);
    let ours = reef_proto::envelope::VERSION as u8;
    let theirs = ours + 1;
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(subject, of_protocol(&ApiRequest::ListNodes, theirs).into()),
    )
    .await
    .expect("an answer in time")
    .expect("an answer");
    let ApiReply(answer) = decode::<ApiReply>(&reply.payload).expect("in this build's protocol");
    let refused = answer.expect_err("refused");
    assert!(
        refused
            .message
            .contains(&format!("speak reef protocol {ours}"))
            && refused
                .message
                .contains(&format!("the caller speaks protocol {theirs}"))
            && refused.message.contains("Upgrades"),
        "{refused}"
    );
    // The cluster goes on as before.
    cluster.cli.ok(&["nodes"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_replaced_one_at_a_time_drop_no_request() {
    let mut cluster = TestCluster::start(2).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "replicas = 2\n");
    cluster.deploy(&app).await;
    let ports: Vec<u16> = cluster
        .agents
        .iter()
        .map(|agent| agent.http_port.expect("http port"))
        .collect();

    // A client that sends each request to a node not being upgraded, as a
    // load balancer that takes a node out while it is worked on would.
    const NONE: usize = usize::MAX;
    let upgrading = Arc::new(AtomicUsize::new(NONE));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = tokio::spawn({
        let (upgrading, sent, failed, stop) = (
            upgrading.clone(),
            sent.clone(),
            failed.clone(),
            stop.clone(),
        );
        let ports = ports.clone();
        async move {
            let mut turn = 0usize;
            while !stop.load(Ordering::SeqCst) {
                turn += 1;
                let mut node = turn % ports.len();
                if node == upgrading.load(Ordering::SeqCst) {
                    node = (node + 1) % ports.len();
                }
                let ok = http::get(ports[node], "hello.test", "/")
                    .await
                    .is_ok_and(|r| r.status == 200 && r.body.starts_with("v1 "));
                sent.fetch_add(1, Ordering::SeqCst);
                if !ok {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });

    for (i, name) in ["node-1", "node-2"].into_iter().enumerate() {
        upgrading.store(i, Ordering::SeqCst);
        // Drain: its replicas move (each new one healthy before the old
        // one stops); the command waits until the node is empty.
        cluster.cli.ok(&["node", "drain", name]).await;
        // Swap and restart: here the same binary, started again.
        assert!(cluster.agents[i].terminate().await, "{name} stops cleanly");
        cluster.agents[i].restart();
        eventually(
            &format!("{name} ready"),
            Duration::from_secs(30),
            || async {
                let nodes = cluster.cli.nodes().await;
                nodes
                    .iter()
                    .any(|n| n["name"] == name && n["state"] == "ready")
                    .then_some(())
            },
        )
        .await;
        cluster.cli.ok(&["node", "eligible", name]).await;
        upgrading.store(NONE, Ordering::SeqCst);
        cluster.healthy_nodes("hello", 2).await;
    }
    stop.store(true, Ordering::SeqCst);
    client.await.expect("the client");
    let (sent, failed) = (sent.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(sent > 20, "only {sent} requests were sent");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
}
