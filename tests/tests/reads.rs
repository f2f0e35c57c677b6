//! The read-only verbs: any coordinator answers them from KV, a leader or
//! not; `reef jobs` and `reef apps` page and filter.

use reef_proto::api::{ApiErrorKind, ApiRequest, ApiResponse};
use reef_proto::leader::LeaderLease;
use reef_proto::{encode, now_ms, subjects};
use reef_tests::app::write_app;
use reef_tests::{api, eventually, ReefProcess, TestCluster};
use std::collections::BTreeSet;
use std::time::Duration;

/// Holds the leader lease for a coordinator that does not exist, renewing
/// it until `stop` says so, so that every real coordinator stays a follower.
async fn hold_lease_for_nobody(
    client: async_nats::Client,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let js = async_nats::jetstream::new(client);
    let kv = js
        .get_key_value(subjects::LEADER_BUCKET)
        .await
        .expect("leader bucket");
    let lease = LeaderLease {
        coordinator: "nobody".into(),
        name: "nobody".into(),
        acquired_at_ms: now_ms(),
        renewed_at_ms: now_ms(),
        connection: None,
    };
    loop {
        let mut renewed = lease.clone();
        renewed.renewed_at_ms = now_ms();
        kv.put(subjects::LEADER_KEY, encode(&renewed).expect("encode"))
            .await
            .expect("renew the lease");
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_answers_every_read_without_a_leader_and_writes_wait_for_one() {
    let mut cluster = TestCluster::start(1).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "");
    cluster
        .cli
        .ok(&["deploy", app.to_str().expect("path")])
        .await;
    let client = cluster.nats.url.connect().await;
    let job = api::submit(&client, api::shell("exit 7")).await;
    cluster
        .cli
        .wait_for_end(&job.id.to_string(), Duration::from_secs(30))
        .await;

    // The leader goes, and nobody may lead: a lease is held for a
    // coordinator that does not exist.
    cluster.coordinator.kill();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let holder = tokio::spawn(hold_lease_for_nobody(client.clone(), stopped));
    let _follower =
        ReefProcess::coordinator(&cluster.nats.url, cluster.dir.path(), &["--name", "f1"]);

    let jobs = eventually(
        "the follower to list jobs",
        Duration::from_secs(20),
        || async {
            let out = cluster.cli.run(&["jobs", "--json"]).await;
            (out.code == Some(0)).then(|| out.json())
        },
    )
    .await;
    assert_eq!(jobs[0]["id"], job.id.to_string(), "{jobs}");
    assert_eq!(jobs[0]["exit_code"], 7, "{jobs}");
    let one = cluster.cli.job(&job.id.to_string()[..13]).await;
    assert_eq!(one["state"], "exited", "{one}");
    let nodes = cluster.cli.nodes().await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    assert_eq!(
        status["instances"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    assert_eq!(status["instances"][0]["state"], "healthy", "{status}");
    let apps = cluster.cli.ok(&["apps", "--json"]).await.json();
    assert_eq!(apps[0]["name"], "hello", "{apps}");
    let releases = cluster.cli.ok(&["releases", "hello"]).await.stdout;
    assert!(releases.contains('1'), "{releases}");
    cluster.cli.ok(&["secrets", "list", "hello"]).await;
    cluster.cli.ok(&["certs", "list"]).await;

    // A write needs the leader, and there is none.
    let refused = api::call(&client, ApiRequest::SubmitJob(api::shell("true")))
        .await
        .0;
    match refused {
        Err(e) => assert_eq!(e.kind, ApiErrorKind::Unavailable, "{e}"),
        Ok(answer) => panic!("a submission was answered without a leader: {answer:?}"),
    }
    stop.send_replace(true);
    holder.await.expect("lease holder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_page_newest_first_filter_by_state_and_page_on() {
    let cluster = TestCluster::start(1).await;
    let client = cluster.nats.url.connect().await;
    let mut submitted = Vec::new();
    for _ in 0..61 {
        submitted.push(api::submit(&client, api::shell("true")).await.id);
    }
    let sleeper = api::submit(&client, api::shell("sleep 60")).await.id;
    submitted.push(sleeper);
    eventually("the quick jobs to end", Duration::from_secs(60), || async {
        let jobs = api::jobs(&client).await;
        (jobs.iter().filter(|j| j.state.is_terminal()).count() == 61).then_some(())
    })
    .await;
    cluster.cli.ok(&["job", "stop", &sleeper.to_string()]).await;
    eventually("the sleeper to stop", Duration::from_secs(30), || async {
        let job = cluster.cli.job(&sleeper.to_string()).await;
        (job["state"] == "stopped").then_some(())
    })
    .await;

    let first = cluster.cli.ok(&["jobs", "--json", "--limit", "50"]).await;
    let page: Vec<String> = first
        .json()
        .as_array()
        .expect("page")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(page.len(), 50);
    assert_eq!(page[0], sleeper.to_string(), "newest first");
    let mut sorted = page.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(page, sorted, "newest first all the way");
    let last = page.last().expect("a last job").clone();
    assert!(
        first.stderr.contains(&format!("reef jobs --before {last}")),
        "{}",
        first.stderr
    );

    let second = cluster
        .cli
        .ok(&["jobs", "--json", "--limit", "50", "--before", &last])
        .await;
    let rest: Vec<String> = second
        .json()
        .as_array()
        .expect("page")
        .iter()
        .map(|j| j["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(rest.len(), submitted.len() - 50);
    assert!(!second.stderr.contains("more:"), "{}", second.stderr);
    let listed: BTreeSet<String> = page.into_iter().chain(rest).collect();
    let all: BTreeSet<String> = submitted.iter().map(|id| id.to_string()).collect();
    assert_eq!(listed, all, "two pages list every job once");

    let stopped = cluster
        .cli
        .ok(&["jobs", "--json", "--state", "stopped"])
        .await
        .json();
    assert_eq!(stopped.as_array().map(Vec::len), Some(1), "{stopped}");
    assert_eq!(stopped[0]["id"], sleeper.to_string());
    let exited = cluster
        .cli
        .ok(&["jobs", "--json", "--state", "exited", "--limit", "1000"])
        .await
        .json();
    assert_eq!(exited.as_array().map(Vec::len), Some(61));

    let wrong = cluster.cli.run(&["jobs", "--state", "finished"]).await;
    assert_ne!(wrong.code, Some(0));
    assert!(wrong.stderr.contains("one of pending"), "{}", wrong.stderr);
    let wrong = cluster.cli.run(&["jobs", "--limit", "0"]).await;
    assert_ne!(wrong.code, Some(0));

    let page = match api::call(
        &client,
        ApiRequest::QueryJobs(reef_proto::api::JobQuery::newest(5)),
    )
    .await
    .0
    {
        Ok(ApiResponse::Jobs { jobs, truncated }) => (jobs.len(), truncated),
        other => panic!("{other:?}"),
    };
    assert_eq!(page, (5, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_listed_most_recently_changed_first_and_filter_by_state() {
    let cluster = TestCluster::start(1).await;
    for name in ["first", "second"] {
        let dir = cluster.dir.path().join(name);
        write_app(&dir, "v1", 200, "");
        let manifest = std::fs::read_to_string(dir.join("Reef.toml")).expect("manifest");
        let manifest = manifest
            .replace("name = \"hello\"", &format!("name = \"{name}\""))
            .replace("hello.test", &format!("{name}.test"));
        std::fs::write(dir.join("Reef.toml"), manifest).expect("manifest");
        cluster
            .cli
            .ok(&["deploy", dir.to_str().expect("path")])
            .await;
    }
    cluster.cli.ok(&["stop", "first"]).await;
    let apps = cluster.cli.ok(&["apps", "--json"]).await.json();
    let names: Vec<&str> = apps
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| a["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["first", "second"], "the stopped one changed last");
    let running = cluster
        .cli
        .ok(&["apps", "--json", "--state", "running"])
        .await
        .json();
    assert_eq!(running.as_array().map(Vec::len), Some(1));
    assert_eq!(running[0]["name"], "second");
    let one = cluster.cli.ok(&["apps", "--json", "--limit", "1"]).await;
    assert_eq!(one.json().as_array().map(Vec::len), Some(1));
    assert!(one.stderr.contains("--limit 1"), "{}", one.stderr);
    let wrong = cluster.cli.run(&["apps", "--state", "sleeping"]).await;
    assert_ne!(wrong.code, Some(0));
    assert!(wrong.stderr.contains("one of running"), "{}", wrong.stderr);
}
