//! Crashes and restarts: an agent killed mid-job, a coordinator restarted
//! with work queued, and clean shutdown on SIGTERM.

use reef_proto::job::JobState;
use reef_tests::process::alloc_alive;
use reef_tests::{api, eventually, NatsServer, ReefProcess, TestCluster};
use std::collections::HashMap;
use std::time::Duration;

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_job_reports_it_lost_and_never_reruns_it() {
    let mut cluster = TestCluster::start(1).await;
    let runs = cluster.shared_file("runs");
    let script = format!("echo ran >> {runs}; sleep 300");
    let id = cluster.cli.submit(&["sh", "-c", &script]).await;
    let alloc = eventually("the job to run", Duration::from_secs(20), || async {
        let job = cluster.cli.job(&id).await;
        let runs = lines(&runs);
        (job["state"] == "running" && runs.len() == 1)
            .then(|| job["alloc"].as_str().unwrap_or("").to_string())
    })
    .await;

    cluster.agents[0].kill();
    assert!(alloc_alive(&alloc), "the job outlives a SIGKILLed agent");
    cluster.agents[0].restart();

    let job = cluster.cli.wait_for_end(&id, Duration::from_secs(30)).await;
    assert_eq!(job["state"], "lost", "{job}\n{}", cluster.logs());
    // Lost as soon as the killed agent's connection closed (or, had the
    // restart come first, as the restarted agent reports it).
    let reason = job["reason"].as_str().expect("reason");
    assert!(
        reason.contains("went away") || reason.contains("restarted"),
        "{reason}"
    );
    eventually(
        "the orphaned job process to be killed",
        Duration::from_secs(10),
        || async { (!alloc_alive(&alloc)).then_some(()) },
    )
    .await;
    assert_eq!(lines(&runs).len(), 1, "the job did not run a second time");

    // The restarted agent keeps its identity and takes new work.
    let nodes = cluster.cli.wait_for_nodes(1).await;
    assert_eq!(nodes.len(), 1, "same node id after restart: {nodes:?}");
    let out = cluster.cli.run(&["run", "--", "echo", "after"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "after\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_finished_while_nats_was_down_is_reported_once_it_returns() {
    let mut cluster = TestCluster::start(1).await;
    let client = cluster.nats.url.connect().await;
    let done = cluster.path("done");
    let go = cluster.path("go");
    // The job waits for a file, so it can be made to finish while NATS is away.
    let job = api::submit(
        &client,
        api::shell(&format!(
            "while [ ! -e {go} ]; do sleep 0.05; done; echo finished > {done}; exit 7"
        )),
    )
    .await;
    let id = job.id.to_string();
    eventually("the job to run", Duration::from_secs(20), || async {
        (cluster.cli.job(&id).await["state"] == "running").then_some(())
    })
    .await;
    cluster.nats.kill();
    std::fs::write(&go, "").expect("release the job");
    eventually("the job to finish", Duration::from_secs(20), || async {
        std::path::Path::new(&done).exists().then_some(())
    })
    .await;
    cluster.nats.restart().await;
    let job = cluster.cli.wait_for_end(&id, Duration::from_secs(30)).await;
    assert_eq!(job["state"], "exited", "{job}\n{}", cluster.logs());
    assert_eq!(job["exit_code"], 7);
    assert!(cluster.agents[0].is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_coordinator_loses_no_queued_job() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    // Room for two jobs at a time, so most of them queue.
    let _agent = ReefProcess::agent(&nats.url, dir.path(), "small", &["--cpu", "0.2"]);
    let cli = reef_tests::Cli::new(&nats.url);
    cli.wait_for_nodes(1).await;
    let client = nats.url.connect().await;
    let runs = reef_tests::reef::shared_file(dir.path(), "runs")
        .display()
        .to_string();
    let spec = api::shell(&format!("echo $REEF_JOB_ID >> {runs}; sleep 0.3"));
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(api::submit(&client, spec.clone()).await.id);
    }
    let pending = api::jobs(&client)
        .await
        .iter()
        .filter(|j| matches!(j.state, JobState::Pending { .. }))
        .count();
    assert!(pending >= 8, "most jobs wait for room ({pending} pending)");

    coordinator.kill();
    coordinator.restart();

    let jobs = eventually("all 12 jobs to end", Duration::from_secs(60), || async {
        let reply = tokio::time::timeout(Duration::from_secs(2), api::try_jobs(&client))
            .await
            .ok()??;
        (reply.len() == 12 && reply.iter().all(|j| j.state.is_terminal())).then_some(reply)
    })
    .await;
    for job in &jobs {
        assert_eq!(
            job.state,
            JobState::Exited { code: 0 },
            "{job:?}\n{}",
            coordinator.log_text()
        );
    }
    let mut count: HashMap<String, usize> = HashMap::new();
    for line in lines(&runs) {
        *count.entry(line).or_default() += 1;
    }
    assert_eq!(count.len(), 12, "every job ran");
    assert!(
        count.values().all(|&n| n == 1),
        "each exactly once: {count:?}"
    );
    for id in ids {
        assert_eq!(count.get(&id.to_string()), Some(&1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_agents_and_coordinators_cleanly() {
    let mut cluster = TestCluster::start(1).await;
    let id = cluster.cli.submit(&["sleep", "300"]).await;
    eventually("the job to run", Duration::from_secs(20), || async {
        (cluster.cli.job(&id).await["state"] == "running").then_some(())
    })
    .await;
    assert!(
        cluster.agents[0].terminate().await,
        "agent exits 0 on SIGTERM"
    );
    let job = cluster.cli.wait_for_end(&id, Duration::from_secs(20)).await;
    assert_eq!(job["state"], "lost", "{job}");
    assert!(
        job["reason"].as_str().unwrap_or("").contains("shut down"),
        "{job}"
    );
    assert!(
        cluster.coordinator.terminate().await,
        "coordinator exits 0 on SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_a_node_that_stays_gone_is_reported_lost_not_rerun() {
    let mut cluster = TestCluster::start(2).await;
    let runs = cluster.path("runs");
    let script = format!("echo $REEF_NODE_ID >> {runs}; sleep 300");
    let id = cluster.cli.submit(&["sh", "-c", &script]).await;
    let node = eventually("the job to run", Duration::from_secs(20), || async {
        let job = cluster.cli.job(&id).await;
        (job["state"] == "running" && lines(&runs).len() == 1)
            .then(|| job["node_name"].as_str().unwrap_or("").to_string())
    })
    .await;
    let index: usize = node
        .trim_start_matches("node-")
        .parse::<usize>()
        .expect("node-N")
        - 1;
    cluster.agents[index].kill();
    let job = cluster.cli.wait_for_end(&id, Duration::from_secs(20)).await;
    assert_eq!(job["state"], "lost", "{job}");
    // A killed agent's connection closes: the coordinator says so.
    assert!(
        job["reason"]
            .as_str()
            .unwrap_or("")
            .contains("went away (its connection closed)"),
        "{job}"
    );
    assert_eq!(lines(&runs).len(), 1, "not run again elsewhere");
    let nodes = cluster.cli.nodes().await;
    let gone = nodes
        .iter()
        .find(|n| n["name"] == node.as_str())
        .expect("listed");
    assert_eq!(gone["state"], "down", "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_retries_runs_again_elsewhere_and_the_stale_copy_stops_on_return() {
    let mut cluster = TestCluster::start(2).await;
    let runs = cluster.shared_file("runs");
    let script = format!("echo $REEF_NODE_ID >> {runs}; sleep 300");
    let out = cluster
        .cli
        .ok(&[
            "run",
            "--detach",
            "--retries",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .await;
    let id = out.stdout.trim().to_string();
    let (first, stale) = eventually("the job to run", Duration::from_secs(20), || async {
        let job = cluster.cli.job(&id).await;
        (job["state"] == "running" && lines(&runs).len() == 1).then(|| {
            (
                job["node_name"].as_str().unwrap_or("").to_string(),
                job["alloc"].as_str().unwrap_or("").to_string(),
            )
        })
    })
    .await;
    let index: usize = first
        .trim_start_matches("node-")
        .parse::<usize>()
        .expect("node-N")
        - 1;
    cluster.agents[index].kill();

    // Lost with a retry left: it runs again on the other node.
    let job = eventually(
        "the retry to run elsewhere",
        Duration::from_secs(20),
        || async {
            let job = cluster.cli.job(&id).await;
            (job["state"] == "running"
                && job["node_name"] != first.as_str()
                && lines(&runs).len() == 2)
                .then_some(job)
        },
    )
    .await;
    assert_eq!(job["lost_on"].as_array().map(Vec::len), Some(1), "{job}");
    let ran_on = lines(&runs);
    assert_ne!(ran_on[0], ran_on[1], "the retry ran on another node");
    let retry = job["alloc"].as_str().expect("alloc").to_string();
    assert!(
        alloc_alive(&stale),
        "the first attempt outlives its killed agent"
    );

    // The node returns: it stops its stale copy; the retry keeps running.
    cluster.agents[index].restart();
    eventually(
        "the stale copy to be stopped",
        Duration::from_secs(20),
        || async { (!alloc_alive(&stale)).then_some(()) },
    )
    .await;
    let job = cluster.cli.job(&id).await;
    assert_eq!(job["state"], "running", "{job}");
    assert!(alloc_alive(&retry));
    cluster.cli.ok(&["job", "stop", &id]).await;
    let job = cluster.cli.wait_for_end(&id, Duration::from_secs(20)).await;
    assert_eq!(job["state"], "stopped", "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_noticed_at_once_not_after_the_grace() {
    // A grace so long that only the closed connection explains a quick move.
    let mut cluster = TestCluster::start_with(2, &["--node-grace", "120s"], |_| Vec::new()).await;
    let app = cluster.dir.path().join("app");
    reef_tests::app::write_app(&app, "v1", 200, "");
    cluster.deploy(&app).await;
    let host = cluster.healthy_nodes("hello", 1).await.remove(0);
    let index: usize = host.trim_start_matches("node-").parse().expect("node-N");
    cluster.agents[index - 1].kill();
    let killed = std::time::Instant::now();
    let deadline = killed + Duration::from_secs(60);
    let moved = loop {
        let (healthy, _) = reef_tests::app::healthy_on(&cluster.cli).await;
        if healthy.len() == 1 && !healthy.contains(&host) {
            break healthy;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no replacement within 60 s of the kill\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "agent kill -9: replacement healthy on {moved:?} after {:?}",
        killed.elapsed()
    );
    let nodes = cluster.cli.nodes().await;
    let gone = nodes
        .iter()
        .find(|n| n["name"] == host.as_str())
        .expect("listed");
    assert_eq!(gone["state"], "down", "{gone}");
    assert!(
        cluster
            .logs()
            .contains("agent disconnected; its work moves now"),
        "{}",
        cluster.logs()
    );
}
