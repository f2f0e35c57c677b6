//! Maintenance mode end to end: `reef maintenance on` makes every node,
//! the one running the app and the one forwarding to it, answer 503 with
//! the page and a Retry-After, while the instance keeps running untouched
//! (same process, same instance); `reef status` and `reef apps` say so;
//! `off` serves the app again from that same process; a deploy while in
//! maintenance stays in it. Bad pages are refused before anything changes.

use reef_tests::app::{instance_pids, process_in, write_app};
use reef_tests::{eventually, http, TestCluster};
use std::time::Duration;

/// `(status, body, retry-after)` of `GET /` for `hello.test` on `port`.
async fn answer(port: u16) -> Option<(u16, String, Option<String>)> {
    let response = http::get(port, "hello.test", "/").await.ok()?;
    let retry = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .map(|(_, value)| value.clone());
    Some((response.status, response.body, retry))
}

/// The id and host pids of the app's one instance.
async fn instance(cluster: &TestCluster) -> (String, Vec<String>) {
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    let id = status["instances"][0]["id"]
        .as_str()
        .expect("an instance")
        .to_string();
    let pids = instance_pids(&id);
    (id, pids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_answers_503_on_every_node_while_the_instance_keeps_running() {
    let cluster = TestCluster::start(2).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "");
    cluster.deploy(&app).await;
    cluster.healthy_nodes("hello", 1).await;
    let ports: Vec<u16> = cluster
        .node_names()
        .iter()
        .map(|n| cluster.proxy_port(n))
        .collect();
    let mut served = Vec::new();
    for &port in &ports {
        let body = eventually("hello served", Duration::from_secs(10), || async {
            answer(port).await.filter(|a| a.0 == 200).map(|a| a.1)
        })
        .await;
        served.push(process_in(&body));
    }
    assert_eq!(served[0], served[1], "one instance serves both nodes");
    let before = instance(&cluster).await;
    assert!(!before.1.is_empty(), "the instance's process is found");

    // Bad pages are refused, and nothing changes.
    let big = cluster.dir.path().join("big.html");
    std::fs::write(&big, vec![b'a'; 64 * 1024 + 1]).expect("write");
    let binary = cluster.dir.path().join("binary.html");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).expect("write");
    let image = cluster.dir.path().join("down.png");
    std::fs::write(&image, b"png").expect("write");
    for (file, why) in [
        (&big, "at most 64 KiB"),
        (&binary, "not valid UTF-8"),
        (&image, ".html, .htm, .txt or .json"),
    ] {
        let out = cluster
            .cli
            .run(&[
                "maintenance",
                "on",
                "hello",
                "--page",
                file.to_str().expect("path"),
            ])
            .await;
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(out.stderr.contains(why), "{why}: {out:?}");
    }
    let out = cluster.cli.run(&["maintenance", "on", "nothere"]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert_eq!(answer(ports[0]).await.expect("answer").0, 200);

    // On, with a page: every node answers 503 with it.
    let page = cluster.dir.path().join("down.html");
    std::fs::write(&page, "<h1>Back at 10</h1>\n").expect("write");
    let out = cluster
        .cli
        .ok(&[
            "maintenance",
            "on",
            "hello",
            "--page",
            page.to_str().expect("path"),
        ])
        .await;
    assert!(out.stderr.contains("hello is in maintenance"), "{out:?}");
    for &port in &ports {
        let (_, body, retry) = eventually(
            "the page on every node",
            Duration::from_secs(10),
            || async { answer(port).await.filter(|a| a.0 == 503) },
        )
        .await;
        assert_eq!(body, "<h1>Back at 10</h1>\n");
        assert_eq!(retry.as_deref(), Some("120"));
    }
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    assert_eq!(status["maintenance"]["page_bytes"], 20, "{status}");
    assert_eq!(status["maintenance"]["custom_page"], true, "{status}");
    assert_eq!(
        status["maintenance"]["content_type"], "text/html; charset=utf-8",
        "{status}"
    );
    let apps = cluster.cli.ok(&["apps", "--json"]).await.json();
    assert!(apps[0]["maintenance"].is_object(), "{apps}");
    let table = cluster.cli.ok(&["apps"]).await.stdout;
    assert!(table.contains("running (maintenance)"), "{table}");
    let text = cluster.cli.ok(&["status", "hello"]).await.stdout;
    assert!(text.contains("maintenance: on"), "{text}");
    assert_eq!(
        instance(&cluster).await,
        before,
        "the instance is untouched"
    );

    // The default page, when none is given.
    cluster.cli.ok(&["maintenance", "on", "hello"]).await;
    eventually("the default page", Duration::from_secs(10), || async {
        answer(ports[1])
            .await
            .filter(|a| a.0 == 503 && a.1.contains("Down for maintenance"))
    })
    .await;

    // Off: the same process serves again, everywhere.
    let out = cluster.cli.ok(&["maintenance", "off", "hello"]).await;
    assert!(out.stderr.contains("out of maintenance"), "{out:?}");
    for &port in &ports {
        let body = eventually("served again", Duration::from_secs(10), || async {
            answer(port).await.filter(|a| a.0 == 200).map(|a| a.1)
        })
        .await;
        assert_eq!(process_in(&body), served[0]);
    }
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    assert!(status["maintenance"].is_null(), "{status}");
    assert_eq!(
        instance(&cluster).await,
        before,
        "the instance is untouched"
    );

    // A deploy while in maintenance keeps it: the new release's routes
    // carry the page too, until `off`.
    cluster.cli.ok(&["maintenance", "on", "hello"]).await;
    write_app(&app, "v2", 200, "");
    cluster.deploy(&app).await;
    for &port in &ports {
        let (status, body, _) = answer(port).await.expect("answer");
        assert_eq!(status, 503, "{body}");
    }
    cluster.cli.ok(&["maintenance", "off", "hello"]).await;
    for &port in &ports {
        eventually("v2 served", Duration::from_secs(10), || async {
            answer(port)
                .await
                .filter(|a| a.0 == 200 && a.1.starts_with("v2 "))
        })
        .await;
    }
}
