//! reef on a 3-server NATS cluster with replicated (R3) streams and buckets.

use reef_tests::{Cli, NatsCluster, ReefProcess};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_on_a_three_server_nats_cluster_with_replicated_state() {
    let nats = NatsCluster::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let urls = nats.urls();
    let _coordinator = ReefProcess::coordinator(&urls, dir.path(), &["--replicas", "3"]);
    // Each agent starts from a different server; all know the full list.
    let _a = ReefProcess::agent(&urls, dir.path(), "a", &[]);
    let _b = ReefProcess::agent(&nats.servers[2].url, dir.path(), "b", &[]);
    let cli = Cli::new(&nats.servers[1].url);
    cli.wait_for_nodes(2).await;

    let out = cli
        .run(&["run", "--", "sh", "-c", "echo replicated; exit 4"])
        .await;
    assert_eq!(out.code, Some(4), "{out:?}");
    assert_eq!(out.stdout, "replicated\n");

    // The state really is replicated three times.
    let client = async_nats::connect(&nats.servers[0].url)
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    for stream in [
        "REEF_ASSIGN",
        "REEF_EVENTS",
        "REEF_LOGS",
        "KV_reef-jobs",
        "KV_reef-allocs",
        "KV_reef-nodes",
    ] {
        let mut s = js.get_stream(stream).await.expect("stream exists");
        let info = tokio::time::timeout(Duration::from_secs(5), s.info())
            .await
            .expect("info in time")
            .expect("info");
        assert_eq!(info.config.num_replicas, 3, "{stream}");
    }
}
