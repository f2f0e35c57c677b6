//! A network partition, made real with a network namespace: an agent cut off
//! from NATS keeps serving its app locally while the cluster replaces its
//! replica; once the link heals, the node stops its stale copy and exactly
//! the desired replicas remain.

use reef_tests::app::write_app;
use reef_tests::netns::Netns;
use reef_tests::{eventually, Cli, NatsServer, ReefProcess};
use std::time::Duration;

/// GETs `/` for hello.test from inside the namespace, on its own loopback.
fn local_get(netns: &Netns, port: u16) -> Option<String> {
    let script = format!(
        "import urllib.request\n\
         r = urllib.request.Request('http://127.0.0.1:{port}/', headers={{'Host': 'hello.test'}})\n\
         print(urllib.request.urlopen(r, timeout=2).read().decode(), end='')"
    );
    netns.run("python3", &["-c", &script])
}

async fn instances(cli: &Cli) -> Vec<(String, String)> {
    let status = cli.ok(&["status", "hello", "--json"]).await.json();
    status["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|i| {
            (
                i["node_name"].as_str().unwrap_or("").to_string(),
                i["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_node_keeps_serving_locally_and_ends_its_stale_copy_after_healing() {
    let netns = Netns::create().expect("network namespaces need root and iproute2");
    let nats = NatsServer::start_on(&netns.host_ip).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let island = ReefProcess::agent_in(Some(&netns.name), &nats.url, dir.path(), "island", &[]);
    let _mainland = ReefProcess::agent(&nats.url, dir.path(), "mainland", &[]);
    let cli = Cli::new(&nats.url);
    cli.wait_for_nodes(2).await;
    let app = dir.path().join("app");
    write_app(&app, "v1", 200, "replicas = 2\n");
    cli.ok(&["deploy", app.to_str().expect("path")]).await;
    eventually(
        "a replica on each node",
        Duration::from_secs(30),
        || async {
            let mut live = instances(&cli).await;
            live.sort();
            (live
                == vec![
                    ("island".to_string(), "healthy".to_string()),
                    ("mainland".to_string(), "healthy".to_string()),
                ])
            .then_some(())
        },
    )
    .await;
    // A third node joins, with room for the replacement.
    let _spare = ReefProcess::agent(&nats.url, dir.path(), "spare", &[]);
    cli.wait_for_nodes(3).await;
    let port = island.http_port.expect("proxy port");
    assert!(local_get(&netns, port).is_some_and(|body| body.starts_with("v1 ")));

    netns.cut();
    let replaced = eventually(
        "the island's replica to be replaced",
        Duration::from_secs(30),
        || async {
            let live = instances(&cli).await;
            let healthy: Vec<&String> = live
                .iter()
                .filter(|(_, state)| state == "healthy")
                .map(|(node, _)| node)
                .collect();
            (healthy.len() == 2 && !healthy.contains(&&"island".to_string())).then_some(live)
        },
    )
    .await;
    assert!(
        replaced.iter().any(|(node, _)| node == "spare"),
        "{replaced:?}"
    );
    // Cut off, the island still serves its own copy to local clients.
    let body = local_get(&netns, port).expect("the island serves locally");
    assert!(body.starts_with("v1 "), "{body}");

    netns.heal();
    eventually("the island to be back", Duration::from_secs(60), || async {
        let nodes = cli.nodes().await;
        nodes
            .iter()
            .any(|n| n["name"] == "island" && n["state"] == "ready")
            .then_some(())
    })
    .await;
    eventually(
        "the island to end its stale copy",
        Duration::from_secs(60),
        || async { local_get(&netns, port).is_none().then_some(()) },
    )
    .await;
    let live = instances(&cli).await;
    assert_eq!(live.len(), 2, "exactly the desired replicas: {live:?}");
    assert!(live.iter().all(|(node, _)| node != "island"), "{live:?}");
}
