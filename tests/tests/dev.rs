//! `reef dev`: one command brings up nats-server, a coordinator and agents,
//! and SIGTERM takes all of it down cleanly.

use reef_tests::dev::ReefDev;
use reef_tests::reef::reef_bin;
use reef_tests::wait::free_port;
use reef_tests::{eventually, Cli};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reef_dev_runs_a_whole_cluster_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let dev = ReefDev::start(&["--nodes", "3", "--port", &port.to_string()], dir.path());
    let cli = Cli::for_dev(&format!("tls://127.0.0.1:{port}"), dir.path());
    let nodes = cli.wait_for_nodes(3).await;
    assert_eq!(nodes.len(), 3);
    let out = cli.run(&["run", "--", "sh", "-c", "echo from dev"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "from dev\n");

    dev.terminate().await;
    // Its nats-server went with it.
    eventually(
        "the dev nats-server to stop listening",
        Duration::from_secs(10),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reef_dev_refuses_a_port_in_use_and_never_joins_what_listens_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(reef_bin())
            .args([
                "dev",
                "--nodes",
                "1",
                "--port",
                &port.to_string(),
                "--data-dir",
            ])
            .arg(dir.path())
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("refused at once, without waiting for a server")
    .expect("run reef dev");
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("port {port} on 127.0.0.1 is taken")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("nats").exists(),
        "nothing was started: {:?}",
        std::fs::read_dir(dir.path()).map(|d| d.count())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reef_dev_on_port_0_picks_a_free_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = ReefDev::start(&["--nodes", "1", "--port", "0"], dir.path());
    let exports = dev.printed("export REEF_NATS_URL=").await;
    let url = exports
        .split_whitespace()
        .next()
        .expect("a NATS URL")
        .to_string();
    assert!(!url.ends_with(":0"), "{url}");
    assert!(url.starts_with("tls://"), "{url}");
    let cli = Cli::for_dev(&url, dir.path());
    assert_eq!(cli.wait_for_nodes(1).await.len(), 1);
    dev.terminate().await;
}
