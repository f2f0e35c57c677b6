//! The node proxy's access log as a daemon logs by default: off, so a busy
//! node writes no line per request; `reef agent --access-log` turns it on,
//! one line per request naming the host, path, status and app.

use reef_tests::app::write_app;
use reef_tests::{eventually, http, ReefProcess, TestCluster};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_is_off_by_default_and_on_with_the_flag() {
    let mut cluster = TestCluster::start(1).await;
    cluster.agents[0].restart_with_default_logging();
    let mut logging = ReefProcess::agent(
        &cluster.nats.url,
        cluster.dir.path(),
        "node-2",
        &["--access-log"],
    );
    logging.restart_with_default_logging();
    cluster.agents.push(logging);
    cluster.wait_ready(2).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "");
    cluster.deploy(&app).await;
    cluster.healthy_nodes("hello", 1).await;

    for node in ["node-1", "node-2"] {
        let port = cluster.proxy_port(node);
        eventually("served", Duration::from_secs(20), || async {
            http::get(port, "hello.test", "/seen-in-the-log")
                .await
                .ok()
                .filter(|r| r.status == 200)
        })
        .await;
    }
    let line = eventually("node-2's access line", Duration::from_secs(10), || async {
        cluster
            .agent("node-2")
            .log_text()
            .lines()
            .find(|l| l.contains("reef_proxy::access") && l.contains("/seen-in-the-log"))
            .map(str::to_string)
    })
    .await;
    for field in ["host=\"hello.test\"", "status=200", "app=\"hello\""] {
        assert!(line.contains(field), "{field} in {line}");
    }
    let quiet = cluster.agent("node-1").log_text();
    assert!(
        !quiet.contains("reef_proxy::access"),
        "node-1 logs no request by default:\n{quiet}"
    );
    assert!(
        quiet.contains("agent starting"),
        "node-1 still logs:\n{quiet}"
    );
}
