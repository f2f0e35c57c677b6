//! Webhooks: the cluster's events POSTed as JSON to real HTTP receivers,
//! one that takes them and one that always fails, whose failures are
//! counted where the admin sees them.

use reef_proto::subjects;
use reef_tests::app::write_app;
use reef_tests::confined::Confined;
use reef_tests::wait::eventually;
use reef_tests::{Cli, TestCluster};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP receiver on 127.0.0.1 answering every request with `status`
/// and keeping each request's JSON body.
async fn receiver(status: u16) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = got.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break buf[end + 4..end + 4 + length].to_vec();
                    }
                };
                if let Ok(event) = serde_json::from_slice::<Value>(&body) {
                    kept.lock().expect("kept").push(event);
                }
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_webhooks_and_failed_deliveries_are_counted() {
    let cluster = TestCluster::start(1).await;
    let (ok_url, received) = receiver(200).await;
    let (broken_url, _) = receiver(500).await;
    let cli = &cluster.cli;
    cli.ok(&[
        "notify",
        "add",
        "ops",
        &ok_url,
        "--events",
        "deploy.failed,deploy.reverted",
    ])
    .await;
    cli.ok(&["notify", "add", "broken", &broken_url]).await;

    // Bad input, refused naming what is wrong; an existing name too.
    for (args, why) in [
        (vec!["notify", "add", "x", "ftp://example.com"], "url: "),
        (
            vec!["notify", "add", "Bad", "https://example.com"],
            "name: ",
        ),
        (
            vec!["notify", "add", "ops", "https://example.com"],
            "exists already",
        ),
        (
            vec![
                "notify",
                "add",
                "y",
                "https://example.com",
                "--events",
                "deploy.maybe",
            ],
            "unknown event kind",
        ),
        (vec!["notify", "rm", "nosuch"], "no webhook named nosuch"),
    ] {
        let out = cli.run(&args).await;
        assert_ne!(out.code, Some(0), "reef {args:?}");
        assert!(out.stderr.contains(why), "reef {args:?}: {out:?}");
    }

    // A release that fails: its event reaches the webhook with the reason.
    let app = cluster.dir.path().join("hello");
    write_app(&app, "v1", 200, "");
    cluster.deploy(&app).await;
    let bad = cluster.dir.path().join("bad");
    write_app(&bad, "v2", 500, "");
    let out = cli.run(&["deploy", bad.to_str().expect("path")]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    let event = eventually(
        "the failed release at the webhook",
        Duration::from_secs(30),
        || {
            let received = received.clone();
            async move { received.lock().expect("received").first().cloned() }
        },
    )
    .await;
    assert!(
        ["deploy.failed", "deploy.reverted"].contains(&event["kind"].as_str().unwrap_or("")),
        "{event}"
    );
    assert_eq!(event["target"], "hello", "{event}");
    assert!(
        event["message"]
            .as_str()
            .is_some_and(|m| m.contains("release 2 failed")),
        "{event}"
    );
    assert!(event["at_ms"].is_u64(), "{event}");
    assert!(
        received
            .lock()
            .expect("received")
            .iter()
            .all(|e| e["kind"] != "deploy.started"),
        "ops asked for failures only"
    );

    // The failures of the broken one are counted, with why.
    let hooks = eventually(
        "the broken webhook's failures",
        Duration::from_secs(40),
        || async {
            let hooks = cli.ok(&["notify", "list", "--json"]).await.json();
            let broken = hooks
                .as_array()?
                .iter()
                .find(|h| h["name"] == "broken")?
                .clone();
            (broken["failed"].as_u64() >= Some(1)).then_some(hooks)
        },
    )
    .await;
    let hooks = hooks.as_array().expect("hooks");
    let ops = hooks.iter().find(|h| h["name"] == "ops").expect("ops");
    assert!(ops["delivered"].as_u64() >= Some(1), "{ops}");
    assert_eq!(ops["failed"], 0, "{ops}");
    assert_eq!(
        ops["events"],
        serde_json::json!(["deploy.failed", "deploy.reverted"])
    );
    let broken = hooks
        .iter()
        .find(|h| h["name"] == "broken")
        .expect("broken");
    assert!(
        broken["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 500")),
        "{broken}"
    );
    let table = cli.ok(&["notify", "list"]).await.stdout;
    assert!(
        table.contains("HTTP 500") && table.contains("every event"),
        "{table}"
    );

    cli.ok(&["notify", "rm", "ops"]).await;
    let left = cli.ok(&["notify", "list", "--json"]).await.json();
    assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");

    // Only an admin manages webhooks; no other role reads their bucket.
    let deployer = Cli::user(&cluster.nats.url, "deployer", "dora");
    let out = deployer.run(&["notify", "list"]).await;
    assert!(out.stderr.contains("needs the admin role"), "{out:?}");
    let creds = cluster.nats.url.user_creds("viewer", "vic");
    let vic = Confined::connect(&cluster.nats.url, &creds).await;
    for subject in [
        format!("$JS.API.DIRECT.GET.KV_{}", subjects::NOTIFY_BUCKET),
        format!("$JS.API.CONSUMER.CREATE.KV_{}", subjects::NOTIFY_BUCKET),
        format!("$KV.{}.forged", subjects::NOTIFY_BUCKET),
    ] {
        assert!(
            vic.publish_refused(&subject).await,
            "a viewer may: {subject}"
        );
    }
}
