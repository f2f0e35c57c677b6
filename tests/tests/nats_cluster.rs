//! reef on a 3-server NATS cluster with replicated (R3) streams and buckets.

use reef_tests::{Cli, NatsCluster, ReefProcess};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_on_a_three_server_nats_cluster_with_replicated_state() {
    let nats = NatsCluster::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let urls = nats.urls();
    let _coordinator = ReefProcess::coordinator(&urls, dir.path(), &["--replicas", "3"]);
    // Each agent starts from a different server; all know the full list.
    let _a = ReefProcess::agent(&urls, dir.path(), "a", &[]);
    let _b = ReefProcess::agent(&nats.servers[2].url, dir.path(), "b", &[]);
    let cli = Cli::new(&nats.servers[1].url);
    cli.wait_for_nodes(2).await;

    let out = cli
        .run(&["run", "--", "sh", "-c", "echo replicated; exit 4"])
        .await;
    assert_eq!(out.code, Some(4), "{out:?}");
    assert_eq!(out.stdout, "replicated\n");

    // The state really is replicated three times.
    let client = nats.servers[0].url.connect().await;
    let js = async_nats::jetstream::new(client);
    for stream in [
        "REEF_ASSIGN",
        "REEF_EVENTS",
        "REEF_LOGS",
        "KV_reef-jobs",
        "KV_reef-allocs",
        "KV_reef-nodes",
    ] {
        let mut s = js.get_stream(stream).await.expect("stream exists");
        let info = tokio::time::timeout(Duration::from_secs(5), s.info())
            .await
            .expect("info in time")
            .expect("info");
        assert_eq!(info.config.num_replicas, 3, "{stream}");
    }
}

/// Submits `spec`, None if the API refused it or did not answer in time.
async fn try_submit(
    client: &async_nats::Client,
    spec: reef_proto::job::JobSpec,
) -> Option<reef_proto::job::JobRecord> {
    use reef_proto::api::{ApiReply, ApiRequest, ApiResponse};
    let request = ApiRequest::SubmitJob(spec);
    let subject = reef_tests::api::admin_subject(request.verb());
    let payload = reef_proto::encode(&request).expect("encode");
    let reply = tokio::time::timeout(Duration::from_secs(10), client.request(subject, payload))
        .await
        .ok()?
        .ok()?;
    match reef_proto::decode::<ApiReply>(&reply.payload).ok()?.0 {
        Ok(ApiResponse::Job(job)) => Some(*job),
        other => {
            eprintln!("submission refused: {other:?}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_nats_server_under_load_loses_nothing_and_work_goes_on() {
    use reef_tests::{api, eventually};
    use std::collections::BTreeSet;

    let mut nats = NatsCluster::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let urls = nats.urls();
    let coordinators: Vec<ReefProcess> = ["c1", "c2"]
        .into_iter()
        .map(|name| {
            ReefProcess::coordinator(&urls, dir.path(), &["--replicas", "3", "--name", name])
        })
        .collect();
    let agents: Vec<ReefProcess> = ["a", "b"]
        .into_iter()
        .map(|name| ReefProcess::agent(&urls, dir.path(), name, &["--cpu", "1"]))
        .collect();
    let survivors = nats
        .urls()
        .with_url(format!("{},{}", nats.servers[1].url, nats.servers[2].url));
    let cli = Cli::new(&survivors);
    cli.wait_for_nodes(2).await;
    let client = survivors.connect().await;

    let runs = reef_tests::reef::shared_file(dir.path(), "runs");
    let script = format!("echo $REEF_JOB_ID >> {}; sleep 0.1", runs.display());
    let mut accepted = BTreeSet::new();
    for _ in 0..20 {
        let job = try_submit(&client, api::shell(&script))
            .await
            .expect("submissions succeed before the kill");
        accepted.insert(job.id.to_string());
    }
    nats.servers[0].kill();
    // Work goes on: every further submission is accepted, perhaps after a
    // few refusals while JetStream elects new stream leaders.
    for _ in 0..20 {
        let job = eventually(
            "a submission to be accepted after the kill",
            Duration::from_secs(30),
            || async { try_submit(&client, api::shell(&script)).await },
        )
        .await;
        accepted.insert(job.id.to_string());
    }

    let logs = || {
        coordinators
            .iter()
            .chain(&agents)
            .map(|p| p.log_text())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let jobs =
        reef_tests::exactly_once::wait_finished(&client, &accepted, Duration::from_secs(120), logs)
            .await;
    reef_tests::exactly_once::assert_ran_once(&jobs, &runs, &accepted, logs);
}
