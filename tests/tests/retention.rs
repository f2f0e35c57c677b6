//! Retention: finished jobs and allocations, finished instances of past
//! releases, releases beyond the newest few and unreferenced artifacts go,
//! and the buckets shrink back; live work and what it needs stay.

use futures::StreamExt;
use reef_proto::subjects;
use reef_tests::app::write_app;
use reef_tests::{api, eventually, TestCluster};
use std::time::Duration;

/// How many messages a bucket's stream holds.
async fn messages(client: &async_nats::Client, bucket: &str) -> u64 {
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js
        .get_stream(format!("KV_{bucket}"))
        .await
        .expect("bucket stream");
    stream.info().await.expect("stream info").state.messages
}

/// How many artifacts the object store holds.
async fn artifacts(client: &async_nats::Client) -> usize {
    let js = async_nats::jetstream::new(client.clone());
    let store = js
        .get_object_store(subjects::ARTIFACTS_STORE)
        .await
        .expect("artifacts");
    let mut list = store.list().await.expect("list");
    let mut count = 0;
    while let Some(info) = list.next().await {
        if !info.expect("object").deleted {
            count += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_work_goes_after_the_retention_period_and_the_buckets_shrink_back() {
    let cluster =
        TestCluster::start_with(1, &["--retain-jobs", "3s", "--keep-releases", "2"], |_| {
            Vec::new()
        })
        .await;
    let client = cluster.nats.url.connect().await;
    let long = api::submit(&client, api::shell("sleep 120")).await;
    let mut done = Vec::new();
    for _ in 0..30 {
        done.push(api::submit(&client, api::shell("true")).await.id);
    }
    eventually("the quick jobs to end", Duration::from_secs(60), || async {
        let jobs = api::jobs(&client).await;
        (jobs.iter().filter(|j| j.state.is_terminal()).count() == 30).then_some(())
    })
    .await;
    assert!(messages(&client, subjects::JOBS_BUCKET).await >= 31);

    let app = cluster.dir.path().join("app");
    for version in ["v1", "v2", "v3", "v4"] {
        write_app(&app, version, 200, "");
        cluster
            .cli
            .ok(&["deploy", app.to_str().expect("path")])
            .await;
    }
    assert_eq!(artifacts(&client).await, 4);

    // The finished jobs and their allocations go; the running one stays.
    eventually(
        "the finished jobs to go",
        Duration::from_secs(60),
        || async {
            let jobs = messages(&client, subjects::JOBS_BUCKET).await;
            let allocs = messages(&client, subjects::ALLOCS_BUCKET).await;
            (jobs == 1 && allocs == 1).then_some(())
        },
    )
    .await;
    let listed = api::jobs(&client).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, long.id);
    let gone = cluster
        .cli
        .run(&["job", "status", &done[0].to_string()])
        .await;
    assert_ne!(gone.code, Some(0));
    assert!(gone.stderr.contains("no job"), "{}", gone.stderr);

    // Past releases' finished instances, releases beyond the newest two
    // and their artifacts go; what runs stays.
    eventually(
        "the old releases to go",
        Duration::from_secs(60),
        || async {
            let instances = messages(&client, subjects::INSTANCES_BUCKET).await;
            let releases = messages(&client, subjects::RELEASES_BUCKET).await;
            let artifacts = artifacts(&client).await;
            (instances == 1 && releases == 2 && artifacts == 2).then_some(())
        },
    )
    .await;
    let releases = cluster.cli.ok(&["releases", "hello"]).await.stdout;
    let versions: Vec<&str> = releases
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(versions, ["4", "3"], "{releases}");
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    assert_eq!(status["instances"][0]["state"], "healthy", "{status}");
    cluster.cli.ok(&["rollback", "hello"]).await;
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    assert_eq!(
        status["release"], 5,
        "a rollback to a kept release works: {status}"
    );
}
