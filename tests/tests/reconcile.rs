//! The reconciler end to end: whatever ended an app's instances (a clean
//! agent stop, a restart of every process, a crash beyond the restart
//! budget), the app serves again with exactly its replicas, and nobody runs
//! a command; an app the user stopped stays stopped, and a release that
//! failed its first deploy is not started again.

use reef_tests::app::{process_in, write_app, write_named_app};
use reef_tests::dev::ReefDev;
use reef_tests::{eventually, http, Cli, TestCluster};
use std::time::Duration;

async fn body(port: u16, host: &str) -> Option<String> {
    http::get(port, host, "/")
        .await
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

/// Waits until `host` answers through `port` with one app process on the
/// agent, and returns the body.
async fn serves_once(cluster: &TestCluster, host: &str, processes: usize) -> String {
    let port = cluster.agents[0].http_port.expect("proxy port");
    eventually(
        &format!("{host} to serve again"),
        Duration::from_secs(40),
        || async {
            let body = body(port, host).await?;
            (cluster.agents[0].app_pids().len() == processes).then_some(body)
        },
    )
    .await
}

async fn live_instances(cli: &Cli, app: &str) -> Vec<serde_json::Value> {
    let status = cli.ok(&["status", app, "--json"]).await.json();
    status["instances"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_comes_back_after_its_agent_is_stopped_cleanly_and_a_stopped_app_stays_stopped() {
    let mut cluster = TestCluster::start(1).await;
    let hello = cluster.dir.path().join("hello");
    write_app(&hello, "v1", 200, "");
    cluster
        .cli
        .ok(&["deploy", hello.to_str().expect("path")])
        .await;
    let parked = cluster.dir.path().join("parked");
    write_named_app(&parked, "parked", &["parked.test"], "", "");
    cluster
        .cli
        .ok(&["deploy", parked.to_str().expect("path")])
        .await;
    cluster.cli.ok(&["stop", "parked"]).await;
    let before = serves_once(&cluster, "hello.test", 1).await;

    for round in 0..2 {
        // SIGTERM, as `systemctl restart` or a reboot sends it.
        assert!(
            cluster.agents[0].terminate().await,
            "the agent exits cleanly"
        );
        assert!(
            cluster.agents[0].app_pids().is_empty(),
            "its app stopped with it"
        );
        cluster.agents[0].restart();
        let after = serves_once(&cluster, "hello.test", 1).await;
        assert_ne!(
            process_in(&after),
            process_in(&before),
            "round {round}: a new process serves"
        );
        let instances = eventually(
            "exactly one live instance of hello",
            Duration::from_secs(20),
            || async {
                let live = live_instances(&cluster.cli, "hello").await;
                (live.len() == 1 && live[0]["state"] == "healthy").then_some(live)
            },
        )
        .await;
        assert_eq!(instances.len(), 1, "round {round}: {instances:?}");
        // The same pass that brought hello back left the stopped app alone.
        assert!(
            live_instances(&cluster.cli, "parked").await.is_empty(),
            "round {round}: a stopped app stays stopped\n{}",
            cluster.logs()
        );
    }
    let log = cluster.coordinator.log_text();
    assert!(log.contains("starting a missing replica"), "{log}");
    let parked = cluster.cli.ok(&["status", "parked", "--json"]).await.json();
    assert_eq!(parked["state"], "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_comes_back_after_every_process_of_a_one_node_cluster_restarts() {
    let mut cluster = TestCluster::start(1).await;
    let hello = cluster.dir.path().join("hello");
    write_app(&hello, "v1", 200, "replicas = 2\n");
    cluster
        .cli
        .ok(&["deploy", hello.to_str().expect("path")])
        .await;
    serves_once(&cluster, "hello.test", 2).await;

    assert!(cluster.agents[0].terminate().await, "agent exits cleanly");
    assert!(
        cluster.coordinator.terminate().await,
        "coordinator exits cleanly"
    );
    cluster.nats.restart().await;
    cluster.coordinator.restart();
    cluster.agents[0].restart();

    serves_once(&cluster, "hello.test", 2).await;
    let live = eventually(
        "exactly two healthy instances",
        Duration::from_secs(30),
        || async {
            let live = live_instances(&cluster.cli, "hello").await;
            (live.len() == 2 && live.iter().all(|i| i["state"] == "healthy")).then_some(live)
        },
    )
    .await;
    assert_eq!(live.len(), 2, "{live:?}\n{}", cluster.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_fails_beyond_its_restart_budget_is_started_again() {
    let cluster = TestCluster::start(1).await;
    let hello = cluster.dir.path().join("hello");
    // No restart on the node: the first crash marks the instance failed.
    write_app(&hello, "v1", 200, "\n[deploy.restart]\nattempts = 0\n");
    cluster
        .cli
        .ok(&["deploy", hello.to_str().expect("path")])
        .await;
    let before = serves_once(&cluster, "hello.test", 1).await;
    let pid = process_in(&before);
    let app = cluster.agents[0].app_pids();
    assert_eq!(app.len(), 1, "one app process: {app:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(app[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the app");
    let port = cluster.agents[0].http_port.expect("proxy port");
    let after = eventually(
        "a new instance to serve",
        Duration::from_secs(40),
        || async {
            let body = body(port, "hello.test").await?;
            (process_in(&body) != pid && cluster.agents[0].app_pids().len() == 1).then_some(body)
        },
    )
    .await;
    assert!(after.starts_with("v1 "), "{after}");
    let log = cluster.coordinator.log_text();
    assert!(
        log.contains("replicas failed; starting another after a backoff"),
        "{log}"
    );
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    assert!(
        status["rollout_failure"].is_null(),
        "a release that served is not a failed deploy: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_fails_its_first_deploy_is_recorded_and_not_started_again() {
    let cluster = TestCluster::start(1).await;
    let bad = cluster.dir.path().join("bad");
    write_app(&bad, "bad", 500, "");
    let out = cluster
        .cli
        .run(&["deploy", bad.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains("no earlier release of hello was running, so nothing serves it"),
        "worded for a first release: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("previous release"), "{}", out.stderr);
    let status = eventually(
        "the failure to be recorded",
        Duration::from_secs(20),
        || async {
            let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
            status["rollout_failure"].is_string().then_some(status)
        },
    )
    .await;
    let failure = status["rollout_failure"].as_str().expect("failure");
    assert!(failure.contains("release 1 failed"), "{failure}");
    assert!(failure.contains("health check failed"), "{failure}");

    // The reconciler's passes go on while another app is deployed; the
    // failed release is held, not started again.
    let good = cluster.dir.path().join("good");
    write_named_app(&good, "good", &["good.test"], "", "");
    cluster
        .cli
        .ok(&["deploy", good.to_str().expect("path")])
        .await;
    serves_once(&cluster, "good.test", 1).await;
    eventually(
        "the reconciler to see the failed app and hold it",
        Duration::from_secs(20),
        || async {
            let log = cluster.coordinator.log_text();
            log.contains("its rollout is halted until the next deploy")
                .then_some(())
        },
    )
    .await;
    assert!(
        live_instances(&cluster.cli, "hello").await.is_empty(),
        "the failed release was not started again"
    );
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    assert_eq!(status["rollout_failure"].as_str(), Some(failure));
    assert_eq!(status["state"], "halted");
    let apps = cluster.cli.ok(&["apps"]).await.stdout;
    let row = apps
        .lines()
        .find(|l| l.starts_with("hello"))
        .expect("hello listed");
    assert!(row.contains("halted"), "{apps}");
}

/// Starts `reef dev` with one node on `port` and `dir`, and returns it with
/// the port of its node's proxy, read from what it prints.
async fn reef_dev(port: u16, dir: &std::path::Path) -> (ReefDev, u16) {
    let mut dev = ReefDev::start(&["--nodes", "1", "--port", &port.to_string()], dir);
    let proxy = dev
        .printed("node-1 proxy: http://127.0.0.1:")
        .await
        .split('/')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("node-1's proxy port");
    (dev, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_comes_back_after_reef_dev_restarts_on_its_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("dev");
    let port = reef_tests::wait::free_port();
    let cli = Cli::for_dev(&format!("tls://127.0.0.1:{port}"), &data);
    let (dev, proxy) = reef_dev(port, &data).await;
    cli.wait_for_nodes(1).await;
    let hello = dir.path().join("hello");
    write_app(&hello, "v1", 200, "");
    cli.ok(&["deploy", hello.to_str().expect("path")]).await;
    let before = eventually("hello to serve", Duration::from_secs(30), || {
        body(proxy, "hello.test")
    })
    .await;
    dev.terminate().await;

    let (dev, proxy) = reef_dev(port, &data).await;
    let after = eventually(
        "hello to serve after the restart",
        Duration::from_secs(40),
        || body(proxy, "hello.test"),
    )
    .await;
    assert_ne!(process_in(&after), process_in(&before));
    let live = eventually(
        "exactly one healthy instance",
        Duration::from_secs(20),
        || async {
            let live = live_instances(&cli, "hello").await;
            (live.len() == 1 && live[0]["state"] == "healthy").then_some(live)
        },
    )
    .await;
    assert_eq!(live.len(), 1);
    dev.terminate().await;
}
