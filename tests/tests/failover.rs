//! Coordinator failover: several coordinators, one leader; killing the leader
//! with work queued loses nothing and runs nothing twice.

use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::job::JobState;
use reef_tests::{api, eventually, exactly_once, leader, Cli, NatsServer, ReefProcess};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const JOBS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_with_100_jobs_queued_loses_none_and_runs_none_twice() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut coordinators: HashMap<String, ReefProcess> = ["c1", "c2", "c3"]
        .into_iter()
        .map(|name| {
            let process = ReefProcess::coordinator(&nats.url, dir.path(), &["--name", name]);
            (name.to_string(), process)
        })
        .collect();
    // Four jobs at a time, so most of the hundred wait in the queue.
    let _agent = ReefProcess::agent(&nats.url, dir.path(), "node-1", &["--cpu", "0.4"]);
    let cli = Cli::new(&nats.url);
    cli.wait_for_nodes(1).await;
    let client = nats.url.connect().await;
    let first = leader::wait(&client).await;

    let runs = reef_tests::reef::shared_file(dir.path(), "runs");
    let script = format!("echo $REEF_JOB_ID >> {}; sleep 0.2", runs.display());
    let mut submitted = BTreeSet::new();
    for _ in 0..JOBS {
        let job = api::submit(&client, api::shell(&script)).await;
        submitted.insert(job.id.to_string());
    }
    eventually(
        "the first jobs to finish",
        Duration::from_secs(30),
        || async {
            let jobs = api::try_jobs(&client).await?;
            jobs.iter().any(|j| j.state.is_terminal()).then_some(())
        },
    )
    .await;
    let queued = api::jobs(&client)
        .await
        .iter()
        .filter(|j| matches!(j.state, JobState::Pending { .. }))
        .count();
    assert!(
        queued >= JOBS / 2,
        "most jobs should still be queued, {queued} are"
    );

    coordinators
        .get_mut(&first.name)
        .expect("the leader is one of ours")
        .kill();
    let second = eventually("another leader", Duration::from_secs(15), || async {
        leader::current(&client)
            .await
            .filter(|lease| lease.coordinator != first.coordinator)
    })
    .await;
    assert_ne!(second.name, first.name);

    let logs = || {
        coordinators
            .values()
            .map(|c| c.log_text())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let jobs =
        exactly_once::wait_finished(&client, &submitted, Duration::from_secs(120), logs).await;
    let ran = exactly_once::assert_ran_once(&jobs, &runs, &submitted, logs);
    assert_eq!(
        ran.len(),
        JOBS,
        "every job ran exactly once: {} runs",
        ran.len()
    );

    // Any coordinator answers the API: the followers relay to the new leader.
    for _ in 0..6 {
        match api::call(&client, ApiRequest::ListNodes).await.0 {
            Ok(ApiResponse::Nodes(nodes)) => assert_eq!(nodes.len(), 1),
            other => panic!("list nodes failed: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_at_once_not_after_its_lease() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A lease so long that only the closed connection explains a quick takeover.
    let mut coordinators: HashMap<String, ReefProcess> = ["c1", "c2"]
        .into_iter()
        .map(|name| {
            let args = ["--name", name, "--leader-lease", "60s"];
            (
                name.to_string(),
                ReefProcess::coordinator(&nats.url, dir.path(), &args),
            )
        })
        .collect();
    let _agent = ReefProcess::agent(&nats.url, dir.path(), "node-1", &[]);
    let cli = Cli::new(&nats.url);
    cli.wait_for_nodes(1).await;
    let client = nats.url.connect().await;
    let first = leader::wait(&client).await;
    assert!(
        first.connection.is_some(),
        "the lease names its connection: {first:?}"
    );

    coordinators
        .get_mut(&first.name)
        .expect("the leader is one of ours")
        .kill();
    let killed = std::time::Instant::now();
    let second = loop {
        if let Some(lease) = leader::current(&client)
            .await
            .filter(|lease| lease.coordinator != first.coordinator)
        {
            break lease;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no other leader within 20 s of the kill:\n{}",
            coordinators
                .values()
                .map(ReefProcess::log_text)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = cli.run(&["run", "--", "echo", "led"]).await;
    println!(
        "leader kill -9: {} leads and ran a job {:?} after the kill",
        second.name,
        killed.elapsed()
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "led\n");
}
