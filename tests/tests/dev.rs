//! `reef dev`: one command brings up nats-server, a coordinator and agents,
//! and SIGTERM takes all of it down cleanly.

use reef_tests::reef::reef_bin;
use reef_tests::wait::free_port;
use reef_tests::{eventually, Cli};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reef_dev_runs_a_whole_cluster_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut dev = tokio::process::Command::new(reef_bin())
        .args([
            "dev",
            "--nodes",
            "3",
            "--port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start reef dev");
    let cli = Cli::for_dev(&format!("tls://127.0.0.1:{port}"), dir.path());
    let nodes = cli.wait_for_nodes(3).await;
    assert_eq!(nodes.len(), 3);
    let out = cli.run(&["run", "--", "sh", "-c", "echo from dev"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "from dev\n");

    let pid = nix::unistd::Pid::from_raw(dev.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(30), dev.wait())
        .await
        .expect("reef dev stops within 30s")
        .expect("wait");
    assert!(status.success(), "{status:?}");
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
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dev = tokio::process::Command::new(reef_bin())
        .args(["dev", "--nodes", "1", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start reef dev");
    let mut lines = tokio::io::BufReader::new(dev.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if let Some(rest) = line.trim().strip_prefix("export REEF_NATS_URL=") {
                return rest.split_whitespace().next().map(str::to_string);
            }
        }
        None
    })
    .await
    .expect("reef dev prints its NATS URL")
    .expect("a NATS URL");
    assert!(!url.ends_with(":0"), "{url}");
    assert!(url.starts_with("tls://"), "{url}");
    let cli = Cli::for_dev(&url, dir.path());
    assert_eq!(cli.wait_for_nodes(1).await.len(), 1);
    let pid = nix::unistd::Pid::from_raw(dev.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(30), dev.wait())
        .await
        .expect("reef dev stops")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}
