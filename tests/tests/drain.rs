//! `reef node drain`: replicas move off the node with the app's capacity kept
//! the whole time, requests sent to the drained node's proxy never fail (it
//! forwards to the replicas elsewhere once its own is gone), jobs finish, and
//! the drain reports done only once the node runs nothing.

use reef_tests::app::write_app;
use reef_tests::probe::Prober;
use reef_tests::{eventually, http, TestCluster};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn healthy(cluster: &TestCluster) -> (Vec<String>, usize) {
    reef_tests::app::healthy_on(&cluster.cli).await
}

fn node<'a>(nodes: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    nodes
        .iter()
        .find(|n| n["name"] == name)
        .expect("node listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_moves_replicas_keeps_capacity_and_waits_for_jobs() {
    let cluster = TestCluster::start(3).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "replicas = 2\n");
    cluster
        .cli
        .ok(&["deploy", app.to_str().expect("path")])
        .await;
    let before = eventually("2 healthy replicas", Duration::from_secs(30), || async {
        let (nodes, live) = healthy(&cluster).await;
        (nodes.len() == 2 && live == 2).then_some(nodes)
    })
    .await;
    // A job lands on a busy node (bin-packing): drain that one.
    let marker = cluster.path("job-done");
    let job = cluster
        .cli
        .submit(&["sh", "-c", &format!("sleep 3; echo done > {marker}")])
        .await;
    let job_node = eventually("the job to run", Duration::from_secs(20), || async {
        let job = cluster.cli.job(&job).await;
        (job["state"] == "running").then(|| job["node_name"].as_str().map(str::to_string))?
    })
    .await;
    assert!(
        before.contains(&job_node),
        "{job_node} hosts a replica: {before:?}"
    );
    let victim = job_node;

    // Watch the app's healthy capacity the whole time.
    let watching = Arc::new(AtomicBool::new(true));
    let lowest = Arc::new(AtomicU64::new(u64::MAX));
    let watcher = {
        let (watching, lowest) = (watching.clone(), lowest.clone());
        let cli = reef_tests::Cli::new(&cluster.nats.url);
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let status = cli.ok(&["status", "hello", "--json"]).await.json();
                let healthy = status["instances"]
                    .as_array()
                    .map(|i| i.iter().filter(|i| i["state"] == "healthy").count())
                    .unwrap_or(0);
                lowest.fetch_min(healthy as u64, Ordering::Relaxed);
            }
        })
    };

    // And send requests to the drained node's proxy the whole time.
    let index: usize = victim.trim_start_matches("node-").parse().expect("node-N");
    let port = cluster.agents[index - 1].http_port.expect("proxy");
    let prober = Prober::start(port, "hello.test");
    eventually(
        "the prober to be served",
        Duration::from_secs(10),
        || async { (prober.ok() > 0).then_some(()) },
    )
    .await;

    let out = cluster
        .cli
        .run_with_timeout(&["node", "drain", &victim], Duration::from_secs(60))
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    assert!(out.stdout.contains("drained"), "{}", out.stdout);
    watching.store(false, Ordering::Relaxed);
    watcher.await.expect("watcher");
    assert!(
        lowest.load(Ordering::Relaxed) >= 2,
        "never fewer than 2 healthy replicas during the drain"
    );
    let probed = prober.finish().await;
    println!(
        "drain: {} requests to the drained node, {} failed, longest gap {:?}",
        probed.ok + probed.failed,
        probed.failed,
        probed.longest_gap
    );
    assert_eq!(
        probed.failed,
        0,
        "no request to the drained node failed\n{}",
        cluster.logs()
    );
    assert!(probed.ok > 10, "{probed:?}");

    // Done means empty: the job finished by itself, the replica moved.
    let job = cluster.cli.job(&job).await;
    assert_eq!(job["state"], "exited", "{job}");
    assert_eq!(job["exit_code"], 0, "{job}");
    assert!(std::path::Path::new(&marker).exists());
    let (after, live) = healthy(&cluster).await;
    assert_eq!(live, 2, "exactly the desired replicas remain");
    assert_eq!(after.len(), 2);
    assert!(!after.contains(&victim), "{after:?}");
    let nodes = cluster.cli.nodes().await;
    assert_eq!(node(&nodes, &victim)["eligibility"], "drained");
    assert_eq!(node(&nodes, &victim)["allocations"], 0);
    // The drained node has no copy of its own: it forwards to the replicas.
    let mut replica_pids = Vec::new();
    for node in &after {
        let n: usize = node.trim_start_matches("node-").parse().expect("node-N");
        let served = http::get(
            cluster.agents[n - 1].http_port.expect("proxy"),
            "hello.test",
            "/",
        )
        .await
        .expect("proxy answers");
        replica_pids.push(served.body.split_whitespace().nth(1).map(str::to_string));
    }
    let served = http::get(port, "hello.test", "/")
        .await
        .expect("proxy answers");
    assert_eq!(served.status, 200, "{served:?}");
    let pid = served.body.split_whitespace().nth(1).map(str::to_string);
    assert!(
        replica_pids.contains(&pid),
        "{served:?} from {replica_pids:?}"
    );

    // Nothing new goes to a drained node until it is made eligible again.
    for _ in 0..3 {
        let out = cluster
            .cli
            .ok(&["run", "--", "sh", "-c", "echo $REEF_NODE_ID"])
            .await;
        assert_ne!(
            out.stdout.trim(),
            node(&nodes, &victim)["id"].as_str().expect("id")
        );
    }
    cluster.cli.ok(&["node", "eligible", &victim]).await;
    let nodes = cluster.cli.nodes().await;
    assert_eq!(node(&nodes, &victim)["eligibility"], "eligible");

    // A busy node cannot be removed; an empty one can.
    let busy = &after[0];
    let out = cluster.cli.run(&["node", "rm", busy]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("drain it first"), "{}", out.stderr);
    cluster.cli.ok(&["node", "rm", &victim]).await;
    let nodes = cluster.cli.nodes().await;
    assert!(
        nodes.iter().all(|n| n["name"] != victim.as_str()),
        "{nodes:?}"
    );
}
