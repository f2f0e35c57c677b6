//! Placement on mixed hardware: trust classes are shown and honoured.

use reef_tests::{Cli, NatsServer, ReefProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_go_to_the_trust_class_they_ask_for() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let _server = ReefProcess::agent(&nats.url, dir.path(), "server", &[]);
    let _lent = ReefProcess::agent(
        &nats.url,
        dir.path(),
        "lent-pc",
        &["--trust", "contributed"],
    );
    let cli = Cli::new(&nats.url);
    let nodes = cli.wait_for_nodes(2).await;
    let trust_of = |name: &str| {
        nodes
            .iter()
            .find(|n| n["name"] == name)
            .map(|n| n["trust"].clone())
            .expect("node listed")
    };
    assert_eq!(trust_of("server"), "dedicated");
    assert_eq!(trust_of("lent-pc"), "contributed");
    let id_of = |name: &str| {
        nodes
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["id"].as_str())
            .expect("node id")
            .to_string()
    };

    for (trust, node) in [("contributed", "lent-pc"), ("dedicated", "server")] {
        for _ in 0..3 {
            let out = cli
                .ok(&[
                    "run",
                    "--trust",
                    trust,
                    "--",
                    "sh",
                    "-c",
                    "echo $REEF_NODE_ID",
                ])
                .await;
            assert_eq!(out.stdout.trim(), id_of(node), "--trust {trust}");
        }
    }

    let out = cli.run(&["run", "--trust", "trusted", "--", "true"]).await;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("dedicated or contributed"),
        "{}",
        out.stderr
    );
}
