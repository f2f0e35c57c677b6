//! The coordinator's `/metrics`, scraped as Prometheus would while jobs
//! come and go and a node is lost.

use reef_tests::wait::{eventually, free_port};
use reef_tests::{http, Cli, TestCluster};
use std::time::Duration;

/// The value of `series` (its name and labels as written) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_s_metrics_follow_jobs_calls_and_nodes() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cluster =
        TestCluster::start_with(2, &["--coordinator-metrics", &listen], |_| Vec::new()).await;
    let scrape = || async {
        let page = http::get(port, "localhost", "/metrics")
            .await
            .expect("the coordinator's metrics");
        assert_eq!(page.status, 200, "{page:?}");
        page.body
    };
    // Waits for `series` to read `want` (what `check` says of it).
    let until = |what: &'static str, series: &'static str, check: fn(f64) -> bool| {
        let scrape = &scrape;
        async move {
            eventually(what, Duration::from_secs(20), || async move {
                let text = scrape().await;
                value(&text, series).filter(|v| check(*v)).map(|_| text)
            })
            .await
        }
    };

    let text = until(
        "two ready nodes",
        "reef_coordinator_nodes{state=\"ready\"}",
        |v| v == 2.0,
    )
    .await;
    assert_eq!(value(&text, "reef_coordinator_leader"), Some(1.0), "{text}");
    assert!(
        value(&text, "reef_coordinator_leader_terms_total") >= Some(1.0),
        "{text}"
    );
    assert!(
        value(&text, "reef_coordinator_kv_write_duration_seconds_count") > Some(0.0),
        "registrations are writes: {text}"
    );
    assert!(
        text.contains("# TYPE reef_coordinator_api_duration_seconds histogram"),
        "{text}"
    );

    // A job that runs, one that waits for memory no node has, a refusal.
    let before = value(&text, "reef_coordinator_placements_total").expect("placements");
    let running = cluster.cli.submit(&["sleep", "30"]).await;
    cluster
        .cli
        .ok(&["run", "--detach", "--mem", "64T", "--", "echo", "big"])
        .await;
    let viewer = Cli::user(&cluster.nats.url, "viewer", "vic");
    assert_ne!(viewer.run(&["run", "--", "true"]).await.code, Some(0));

    let text = until(
        "a running job",
        "reef_coordinator_jobs{state=\"running\"}",
        |v| v >= 1.0,
    )
    .await;
    let text = if value(&text, "reef_coordinator_pending_jobs{reason=\"memory\"}") == Some(1.0) {
        text
    } else {
        until(
            "a job waiting for memory",
            "reef_coordinator_pending_jobs{reason=\"memory\"}",
            |v| v == 1.0,
        )
        .await
    };
    assert_eq!(
        value(&text, "reef_coordinator_jobs{state=\"pending\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "reef_coordinator_pending_jobs{reason=\"cpu\"}"),
        Some(0.0),
        "every reason is listed: {text}"
    );
    assert!(
        value(&text, "reef_coordinator_placements_total") > Some(before),
        "{text}"
    );
    assert!(
        value(&text, "reef_coordinator_jobs_submitted_total") >= Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "reef_coordinator_api_requests_total{verb=\"job.submit\",outcome=\"done\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "reef_coordinator_api_requests_total{verb=\"job.submit\",outcome=\"refused\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            "reef_coordinator_api_duration_seconds_count{verb=\"job.submit\"}"
        ) >= Some(3.0),
        "{text}"
    );
    cluster.cli.ok(&["job", "stop", &running]).await;

    // A node lost shows as down.
    cluster.agents[1].kill();
    let text = until(
        "a node down",
        "reef_coordinator_nodes{state=\"down\"}",
        |v| v == 1.0,
    )
    .await;
    assert_eq!(
        value(&text, "reef_coordinator_nodes{state=\"ready\"}"),
        Some(1.0),
        "{text}"
    );

    let other = http::get(port, "localhost", "/other")
        .await
        .expect("answer");
    assert_eq!(other.status, 404);

    // Every metric of the coordinator and of an agent is in the operations
    // guide's list.
    let agent_port = cluster.agents[0].metrics_port.expect("metrics port");
    let agent = http::get(agent_port, "localhost", "/metrics")
        .await
        .expect("the agent's metrics")
        .body;
    let guide = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
    )
    .expect("docs/operations.md");
    let served: Vec<&str> = text
        .lines()
        .chain(agent.lines())
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .collect();
    let undocumented: Vec<&&str> = served
        .iter()
        .filter(|name| !guide.contains(&format!("| `{name}` |")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/operations.md: {undocumented:?}"
    );

    // The shipped Grafana dashboard asks only for metrics that exist.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-reef.json"),
        )
        .expect("docs/grafana-reef.json"),
    )
    .expect("the dashboard is JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            assert!(
                served.iter().any(|name| expr.contains(name)),
                "{expr} asks for no metric reef serves"
            );
        }
    }
}
