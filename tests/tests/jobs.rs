//! Compute jobs end to end: real nats-server, coordinator, agents and CLI.

use reef_proto::job::JobState;
use reef_tests::process::{is_alive, pids_of};
use reef_tests::{api, eventually, ReefProcess, TestCluster};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_streams_its_output_and_passes_on_its_exit_code() {
    let cluster = TestCluster::start(2).await;
    let nodes = cluster.cli.nodes().await;
    let names: HashSet<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, HashSet::from(["node-1", "node-2"]));
    for node in &nodes {
        assert!(
            node["resources"]["cpu"].as_f64().unwrap_or(0.0) >= 1.0,
            "{node}"
        );
        assert!(
            node["resources"]["memory_bytes"].as_u64().unwrap_or(0) > 0,
            "{node}"
        );
        assert_eq!(node["state"], "ready");
    }

    let out = cluster
        .cli
        .run(&["run", "--", "sh", "-c", "echo hello; exit 3"])
        .await;
    assert_eq!(out.code, Some(3), "{out:?}\n{}", cluster.logs());
    assert_eq!(out.stdout, "hello\n");

    let jobs = cluster.cli.ok(&["jobs", "--json"]).await.json();
    let job = &jobs[0];
    assert_eq!(job["state"], "exited");
    assert_eq!(job["exit_code"], 3);
    let id = job["id"].as_str().expect("job id");
    let logs = cluster.cli.ok(&["logs", id]).await;
    assert_eq!(logs.stdout, "hello\n");

    // stderr stays stderr, and output survives the job.
    let out = cluster
        .cli
        .run(&["run", "--", "sh", "-c", "echo out; echo err >&2; echo more"])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "out\nmore\n");
    assert!(out.stderr.contains("err\n"), "{out:?}");

    // --tail keeps the last lines. (Between stdout and stderr the order is
    // the one the agent read the two pipes in, so this job writes only stdout.)
    let out = cluster
        .cli
        .ok(&["run", "--", "sh", "-c", "echo a; echo b; echo c"])
        .await;
    assert_eq!(out.stdout, "a\nb\nc\n");
    let jobs = cluster.cli.ok(&["jobs", "--json"]).await.json();
    let id = jobs[0]["id"].as_str().expect("id");
    let tail = cluster.cli.ok(&["logs", id, "--tail", "2"]).await;
    assert_eq!(tail.stdout, "b\nc\n", "{tail:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_jobs_all_run_exactly_once_on_both_nodes() {
    let cluster = TestCluster::start(2).await;
    let client = cluster.nats.url.connect().await;
    // Every job runs as a uid of its own: the file they all append to is
    // everyone's to write.
    let runs = cluster.shared_file("runs");
    let script = format!("echo \"$REEF_JOB_ID $REEF_NODE_ID\" >> {runs}");
    let submitted =
        futures::future::join_all((0..200).map(|_| api::submit(&client, api::shell(&script))))
            .await;
    let ids: HashSet<String> = submitted.iter().map(|j| j.id.to_string()).collect();
    assert_eq!(ids.len(), 200);

    let jobs = eventually("200 jobs to end", Duration::from_secs(120), || async {
        let jobs = api::jobs(&client).await;
        (jobs.len() == 200 && jobs.iter().all(|j| j.state.is_terminal())).then_some(jobs)
    })
    .await;
    for job in &jobs {
        assert_eq!(job.state, JobState::Exited { code: 0 }, "{job:?}");
    }
    let text = std::fs::read_to_string(&runs).expect("runs file");
    let mut per_job: HashMap<&str, usize> = HashMap::new();
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for line in text.lines() {
        let (job, node) = line.split_once(' ').expect("job and node");
        *per_job.entry(job).or_default() += 1;
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(per_job.len(), 200, "every job ran");
    assert!(
        per_job.values().all(|&n| n == 1),
        "no job ran twice: {per_job:?}"
    );
    assert!(per_job.keys().all(|id| ids.contains(*id)));
    assert_eq!(per_node.len(), 2, "both nodes ran jobs: {per_node:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_too_big_for_every_node_waits_until_a_bigger_node_joins() {
    let mut cluster = TestCluster::start(1).await;
    let out = cluster
        .cli
        .ok(&["run", "--detach", "--mem", "64T", "--", "echo", "big"])
        .await;
    let id = out.stdout.trim().to_string();
    let job = cluster.cli.job(&id).await;
    assert_eq!(job["state"], "pending");
    let reason = job["reason"].as_str().expect("reason");
    assert!(reason.contains("too little free memory"), "{reason}");
    assert!(reason.contains("needs 64T"), "{reason}");

    cluster.agents.push(ReefProcess::agent(
        &cluster.nats.url,
        cluster.dir.path(),
        "big",
        &["--memory", "128T"],
    ));
    let job = cluster.cli.wait_for_end(&id, Duration::from_secs(30)).await;
    assert_eq!(job["state"], "exited", "{job}");
    assert_eq!(job["exit_code"], 0);
    assert_eq!(job["node_name"], "big");
    assert_eq!(cluster.cli.ok(&["logs", &id]).await.stdout, "big\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_job_kills_its_whole_process_tree() {
    let cluster = TestCluster::start(1).await;
    let inner = "sleep 3002 & wait";
    let script = format!("sleep 3001 & sh -c '{inner}' & wait");
    let id = cluster.cli.submit(&["sh", "-c", &script]).await;
    let pids: Vec<String> = eventually(
        "the job to start its tree",
        Duration::from_secs(20),
        || async {
            let pids: Vec<String> = [
                vec!["sh", "-c", script.as_str()],
                vec!["sleep", "3001"],
                vec!["sh", "-c", inner],
                vec!["sleep", "3002"],
            ]
            .iter()
            .flat_map(|argv| pids_of(argv))
            .collect();
            (pids.len() == 4).then_some(pids)
        },
    )
    .await;
    assert!(pids.iter().all(|p| is_alive(p)), "tree is running");

    let out = cluster.cli.ok(&["job", "stop", &id]).await;
    assert!(out.stdout.contains("stopping"), "{out:?}");
    let job = cluster.cli.wait_for_end(&id, Duration::from_secs(20)).await;
    assert_eq!(job["state"], "stopped", "{job}");
    eventually(
        "every process of the job to be gone",
        Duration::from_secs(10),
        || async { pids.iter().all(|p| !is_alive(p)).then_some(()) },
    )
    .await;
    // Stopping again is harmless and says so.
    let again = cluster.cli.ok(&["job", "stop", &id]).await;
    assert!(
        again.stdout.contains("stopped") || again.stdout.contains("ended"),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_job_and_says_so() {
    let cluster = TestCluster::start(1).await;
    let out = cluster
        .cli
        .run(&["run", "--timeout", "500ms", "--", "sleep", "30"])
        .await;
    assert_eq!(out.code, Some(124), "{out:?}");
    assert!(out.stderr.contains("timed out after"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_prints_lines_as_they_come_and_ends_with_the_job() {
    use tokio::io::AsyncBufReadExt;
    let cluster = TestCluster::start(1).await;
    let go = cluster.path("go");
    let script = format!("echo one; while [ ! -e {go} ]; do sleep 0.05; done; echo two");
    let id = cluster.cli.submit(&["sh", "-c", &script]).await;

    let mut follower = cluster
        .cli
        .command()
        .args(["logs", "-f", &id])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start reef logs -f");
    let mut lines = tokio::io::BufReader::new(follower.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("first line in time")
        .expect("read");
    assert_eq!(
        first.as_deref(),
        Some("one"),
        "the first line arrives while the job still runs"
    );
    assert_eq!(cluster.cli.job(&id).await["state"], "running");

    std::fs::write(&go, "").expect("release the job");
    let second = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("second line in time")
        .expect("read");
    assert_eq!(second.as_deref(), Some("two"));
    let end = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the follower ends with the job")
        .expect("read");
    assert_eq!(end, None);
    let status = tokio::time::timeout(Duration::from_secs(10), follower.wait())
        .await
        .expect("exit in time")
        .expect("wait");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_on_reef_run_stops_the_job() {
    let cluster = TestCluster::start(1).await;
    let started = cluster.path("started");
    let script = format!("touch {started}; sleep 300");
    let mut run = cluster
        .cli
        .command()
        .args(["run", "--", "sh", "-c", &script])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start reef run");
    eventually("the job to start", Duration::from_secs(20), || async {
        std::path::Path::new(&started).exists().then_some(())
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(run.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let status = tokio::time::timeout(Duration::from_secs(20), run.wait())
        .await
        .expect("reef run ends after Ctrl-C")
        .expect("wait");
    assert_eq!(status.code(), Some(130));
    let jobs = cluster.cli.ok(&["jobs", "--json"]).await.json();
    assert_eq!(jobs[0]["state"], "stopped", "{jobs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_workdir_and_labels_reach_the_job() {
    let nats = reef_tests::NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let _a = ReefProcess::agent(&nats.url, dir.path(), "plain", &[]);
    let workdir = dir.path().join("work-here");
    std::fs::create_dir_all(&workdir).expect("mkdir");
    let workdir = workdir.display().to_string();
    let _b = ReefProcess::agent(
        &nats.url,
        dir.path(),
        "gpu-box",
        &[
            "--label",
            "zone=b",
            "--label",
            "gpu=yes",
            "--allow-workdir",
            &workdir,
        ],
    );
    let cli = reef_tests::Cli::new(&nats.url);
    let nodes = cli.wait_for_nodes(2).await;
    let labelled = nodes
        .iter()
        .find(|n| n["name"] == "gpu-box")
        .expect("gpu-box listed");
    assert_eq!(labelled["labels"]["zone"], "b");
    assert_eq!(labelled["labels"]["gpu"], "yes");

    for _ in 0..4 {
        let out = cli
            .run(&[
                "run",
                "--label",
                "zone=b",
                "--env",
                "GREETING=hi there",
                "--workdir",
                &workdir,
                "--",
                "sh",
                "-c",
                "echo \"$GREETING\"; pwd; echo $REEF_NODE_ID",
            ])
            .await;
        assert_eq!(out.code, Some(0), "{out:?}");
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], "hi there");
        assert_eq!(lines[1], workdir);
        assert_eq!(
            lines[2],
            labelled["id"].as_str().expect("id"),
            "the job ran on the labelled node"
        );
    }
    // A working directory that does not exist is not made; one the node
    // does not allow is refused.
    let missing = format!("{workdir}/missing");
    for (asked, why) in [
        (missing.as_str(), "does not exist"),
        ("/etc", "not allowed"),
    ] {
        let out = cli
            .run(&["run", "--label", "zone=b", "--workdir", asked, "--", "true"])
            .await;
        assert_eq!(out.code, Some(124), "{asked}: {out:?}");
        assert!(out.stderr.contains(why), "{asked}: {out:?}");
    }
    assert!(!std::path::Path::new(&missing).exists());
    // No node has the label: the job waits and says why.
    let id = cli
        .ok(&["run", "--detach", "--label", "zone=c", "--", "true"])
        .await
        .stdout
        .trim()
        .to_string();
    let job = cli.job(&id).await;
    assert_eq!(job["state"], "pending");
    assert!(
        job["reason"]
            .as_str()
            .unwrap_or("")
            .contains("without labels zone=c"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reef_run_takes_its_command_without_dashes_and_sigterm_stops_the_job() {
    let cluster = TestCluster::start(1).await;
    // The command starts at the first word that is not a flag of reef run;
    // what follows is its own, dashes included.
    let out = cluster.cli.run(&["run", "echo", "hi", "-n"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "hi -n\n");

    // SIGTERM to `reef run` stops the job, as Ctrl-C does.
    let mut child = cluster
        .cli
        .command()
        .args(["run", "--", "sleep", "60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("reef run");
    let job = eventually("the job to run", Duration::from_secs(20), || async {
        let jobs = cluster.cli.ok(&["jobs", "--json"]).await.json();
        jobs.as_array()?
            .iter()
            .find(|j| j["state"] == "running" && j["command"][0] == "sleep")
            .and_then(|j| j["id"].as_str().map(str::to_string))
    })
    .await;
    let pid = nix::unistd::Pid::from_raw(child.id().expect("pid") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("reef run ends")
        .expect("wait");
    assert_eq!(status.code(), Some(130), "{status:?}");
    let record = cluster.cli.job(&job).await;
    assert_eq!(record["state"], "stopped", "{record}");
    // A prefix of the id finds it in either case.
    let prefix = job[..13].to_uppercase();
    let found = cluster
        .cli
        .ok(&["job", "status", &prefix, "--json"])
        .await
        .json();
    assert_eq!(found["id"], job.as_str());

    // Scaling to zero points at reef stop.
    let out = cluster.cli.run(&["scale", "hello", "0"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("reef stop hello"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reef_run_stdin_gives_the_job_its_input() {
    let cluster = TestCluster::start(1).await;
    let out = cluster
        .cli
        .run_with_stdin(&["run", "--stdin", "--", "cat"], b"piped\n")
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    assert_eq!(out.stdout, "piped\n");

    // Without --stdin the job reads end of file at once (it does not wait
    // for input that never comes), whatever reef run's own input is.
    let out = cluster
        .cli
        .run_with_stdin(&["run", "--", "cat"], b"not for the job\n")
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "");

    // Input near the limit arrives whole, byte for byte.
    let input: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    assert!(input.len() > 200 * 1024 && input.len() <= 256 * 1024);
    let out = cluster
        .cli
        .run_with_stdin(&["run", "-i", "--", "cat"], input.as_bytes())
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout == input, "{} bytes back", out.stdout.len());

    // A job that reads none of its input still ends.
    let out = cluster
        .cli
        .run_with_stdin(&["run", "--stdin", "--", "true"], input.as_bytes())
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");

    // Jobs whose inputs together pass the largest message still list (a
    // listing leaves the inputs out).
    for _ in 0..4 {
        let out = cluster
            .cli
            .run_with_stdin(&["run", "-d", "--stdin", "--", "true"], input.as_bytes())
            .await;
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let jobs = cluster.cli.ok(&["jobs", "--json"]).await.json();
    assert_eq!(jobs.as_array().map(Vec::len), Some(8), "{jobs}");

    // More than the limit is refused before anything is submitted.
    let too_much = vec![b'x'; 256 * 1024 + 1];
    let out = cluster
        .cli
        .run_with_stdin(&["run", "--stdin", "--", "cat"], &too_much)
        .await;
    assert_eq!(out.code, Some(125), "{out:?}");
    assert!(
        out.stderr.contains("--stdin") && out.stderr.contains("256 KiB"),
        "{out:?}"
    );
    let jobs = cluster.cli.ok(&["jobs", "--json"]).await.json();
    assert_eq!(jobs.as_array().map(Vec::len), Some(8), "{jobs}");
}
