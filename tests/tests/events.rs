//! `reef events`: what happened in the cluster, followed live by a real
//! `reef events -f --json` while deploys, a crash, a failed periodic run, a
//! drain and a lost node happen; read back afterwards; refused by the
//! server to a role that may not read it.

use reef_proto::subjects;
use reef_tests::app::write_app;
use reef_tests::confined::Confined;
use reef_tests::wait::eventually;
use reef_tests::{Cli, TestCluster};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// Whether `events` holds one of `kind` about `target` whose message has `says`.
fn has(events: &[Value], kind: &str, target: &str, says: &str) -> bool {
    events.iter().any(|e| {
        e["kind"] == kind
            && e["target"] == target
            && e["message"].as_str().is_some_and(|m| m.contains(says))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_followed_live_read_back_and_kept_from_submitters() {
    let mut cluster = TestCluster::start(2).await;

    // Follow from now on, as an operator's terminal would.
    let mut follower = cluster.cli.command();
    follower
        .args(["events", "-f", "--json", "--since", "1s"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut follower = follower.spawn().expect("reef events -f");
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let lines = follower.stdout.take().expect("stdout");
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(lines).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let event: Value = serde_json::from_str(&line).expect("a JSON line");
                seen.lock().expect("seen").push(event);
            }
        })
    };
    let saw = |what: &'static str, kind: &'static str, target: &'static str, says: &'static str| {
        let seen = seen.clone();
        async move {
            eventually(what, Duration::from_secs(30), || {
                let seen = seen.clone();
                async move { has(&seen.lock().expect("seen"), kind, target, says).then_some(()) }
            })
            .await
        }
    };

    // A deploy starts and becomes healthy.
    let app = cluster.dir.path().join("hello");
    write_app(&app, "v1", 200, "");
    cluster.deploy(&app).await;
    saw("deploy started", "deploy.started", "hello", "release 1").await;
    saw("deploy healthy", "deploy.healthy", "hello", "release 1").await;

    // Its process dies: a crash, restarted.
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    let instance = status["instances"][0]["id"].as_str().expect("instance");
    let pid: i32 = reef_tests::app::instance_pids(instance)[0]
        .parse()
        .expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the app");
    saw(
        "a crash",
        "instance.crashed",
        "hello",
        "exited with code 137",
    )
    .await;

    // A release that never becomes healthy fails (and goes back).
    let bad = cluster.dir.path().join("bad");
    write_app(&bad, "v2", 500, "");
    let out = cluster
        .cli
        .run(&["deploy", bad.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    eventually("a failed release", Duration::from_secs(30), || async {
        let seen = seen.lock().expect("seen");
        (has(&seen, "deploy.reverted", "hello", "release 2 failed")
            || has(&seen, "deploy.failed", "hello", "release 2 failed"))
        .then_some(())
    })
    .await;

    // A periodic run that fails.
    cluster
        .cli
        .ok(&[
            "cron",
            "add",
            "broken",
            "--schedule",
            "* * * * * *",
            "--",
            "false",
        ])
        .await;
    saw(
        "a failed run",
        "cron.failed",
        "broken",
        "exited with code 1",
    )
    .await;
    cluster.cli.ok(&["cron", "rm", "broken"]).await;

    // A node that stops answering is down, and up again when heard from.
    let agent = nix::unistd::Pid::from_raw(cluster.agents[1].pid().expect("pid") as i32);
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGSTOP).expect("stop node-2");
    saw("node-2 silent", "node.down", "node-2", "node-2").await;
    nix::sys::signal::kill(agent, nix::sys::signal::Signal::SIGCONT).expect("continue node-2");
    saw("node-2 back", "node.up", "node-2", "heard from again").await;

    // A drain, then a lost node.
    cluster.cli.ok(&["node", "drain", "node-2"]).await;
    saw(
        "node-2 drained",
        "node.drained",
        "node-2",
        "nothing runs on it",
    )
    .await;
    cluster.agents[1].kill();
    // Down a second time (its connection closed, or it went silent).
    eventually("node-2 down again", Duration::from_secs(30), || async {
        let seen = seen.lock().expect("seen");
        let downs = seen
            .iter()
            .filter(|e| e["kind"] == "node.down" && e["target"] == "node-2")
            .count();
        (downs >= 2).then_some(())
    })
    .await;

    // Read back, narrowed to one kind, as a viewer may.
    let viewer = Cli::user(&cluster.nats.url, "viewer", "vic");
    let out = viewer
        .ok(&["events", "--json", "--kind", "deploy.started"])
        .await;
    let started: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        started.len() >= 2 && started.iter().all(|e| e["kind"] == "deploy.started"),
        "{started:#?}"
    );
    let text = viewer.ok(&["events", "--kind", "node.up"]).await.stdout;
    assert!(
        text.contains("node.up") && text.contains("node-1") && text.contains("registered"),
        "{text}"
    );
    let bad_kind = viewer.run(&["events", "--kind", "node.sideways"]).await;
    assert_ne!(bad_kind.code, Some(0));
    assert!(
        bad_kind.stderr.contains("unknown event kind"),
        "{bad_kind:?}"
    );

    // A submitter may not read the stream, nor anyone but coordinators write it.
    let creds = cluster.nats.url.user_creds("submitter", "sam");
    let sam = Confined::connect(&cluster.nats.url, &creds).await;
    let stream = subjects::CLUSTER_EVENTS_STREAM;
    for subject in [
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.STREAM.INFO.{stream}"),
        "reef.cluster.node.down".to_string(),
    ] {
        assert!(
            sam.publish_refused(&subject).await,
            "a submitter may: {subject}"
        );
    }
    let creds = cluster.nats.url.user_creds("viewer", "eve");
    let eve = Confined::connect(&cluster.nats.url, &creds).await;
    assert!(
        eve.publish_refused("reef.cluster.deploy.healthy").await,
        "a viewer may write an event"
    );

    follower.kill().await.expect("stop following");
    reader.await.expect("reader");
}
