//! Job and app output end to end: what a process writes comes back through
//! `reef run` and `reef logs` as it was written (order across stdout and
//! stderr, long lines, no final newline), fast enough for a chatty job, and
//! `reef logs APP` shows the current release's instances by name.

use reef_tests::app::write_app;
use reef_tests::{eventually, TestCluster};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// `reef ARGS` with stdout and stderr into one file, as a terminal shows them.
async fn both_streams(cluster: &TestCluster, args: &[&str]) -> String {
    let path = cluster.path("both-streams");
    let file = std::fs::File::create(&path).expect("create");
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        cluster
            .cli
            .command()
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("clone"))
            .stderr(file)
            .status(),
    )
    .await
    .expect("reef finished in time")
    .expect("run reef");
    assert!(status.success(), "{status}");
    std::fs::read_to_string(&path).expect("read")
}

/// Checks `lines` hold `out 1..=n` and `err 1..=n`, each stream in order
/// and each `err i` after the `out i` written just before it. (Across two
/// pipes that is what survives any scheduling: a pair's stderr line never
/// overtakes its stdout line, while `err i` and `out i+1`, written 0.1 s
/// apart, may be read together by an agent that was not scheduled meanwhile.)
fn assert_written_order(lines: &[&str], n: usize) {
    let at = |line: String| {
        lines
            .iter()
            .position(|l| *l == line)
            .unwrap_or_else(|| panic!("no {line:?} in {lines:#?}"))
    };
    assert_eq!(lines.len(), 2 * n, "{lines:#?}");
    for i in 1..=n {
        assert!(
            at(format!("out {i}")) < at(format!("err {i}")),
            "{lines:#?}"
        );
        if i > 1 {
            assert!(
                at(format!("out {}", i - 1)) < at(format!("out {i}")),
                "{lines:#?}"
            );
            assert!(
                at(format!("err {}", i - 1)) < at(format!("err {i}")),
                "{lines:#?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_stderr_written_together_come_back_in_the_order_written() {
    let cluster = TestCluster::start(1).await;
    // Each pair is written within microseconds, stdout first; the pause
    // only keeps one pair from running into the next.
    let script = "for i in 1 2 3 4 5 6 7 8; do echo out $i; echo err $i >&2; sleep 0.1; done";
    let id = cluster.cli.submit(&["sh", "-c", script]).await;
    let job = cluster.cli.wait_for_end(&id, Duration::from_secs(30)).await;
    assert_eq!(job["output_lines"]["stdout"], 8, "{job}");
    assert_eq!(job["output_lines"]["stderr"], 8, "{job}");
    let all = both_streams(&cluster, &["logs", &id]).await;
    let lines: Vec<&str> = all.lines().collect();
    assert_written_order(&lines, 8);
    let tail = both_streams(&cluster, &["logs", &id, "--tail", "3"]).await;
    assert_eq!(tail.lines().collect::<Vec<_>>(), lines[lines.len() - 3..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_lines_come_back_complete_in_order_and_counted() {
    let cluster = TestCluster::start(1).await;
    let out = cluster.cli.run(&["run", "--", "seq", "1", "1000000"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let expected: String = (1..=1_000_000).map(|i| format!("{i}\n")).collect();
    assert!(out.stdout == expected, "the output differs from seq's");
    let jobs = cluster.cli.ok(&["jobs", "--json"]).await.json();
    let job = &jobs[0];
    assert_eq!(job["output_lines"]["stdout"], 1_000_000, "{job}");
    assert_eq!(job["output_lines"]["stderr"], 0, "{job}");
    // How fast is the benchmark's to say (`cargo bench -p reef-tests --bench
    // logs`, docs/benchmarks.md): a message per line took 16 s of the job's
    // runtime, batches 0.1 s.
    let id = job["id"].as_str().expect("id");
    let tail = cluster.cli.ok(&["logs", id, "--tail", "2"]).await;
    assert_eq!(tail.stdout, "999999\n1000000\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_and_output_without_a_final_newline_come_back_byte_for_byte() {
    let cluster = TestCluster::start(1).await;
    let out = cluster
        .cli
        .run(&[
            "run",
            "--",
            "python3",
            "-c",
            "import sys; sys.stdout.write('A' * 1000000)",
        ])
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.len(), 1_000_000);
    assert!(
        out.stdout.bytes().all(|b| b == b'A'),
        "one line, no newline"
    );
    let jobs = cluster.cli.ok(&["jobs", "--json"]).await.json();
    assert_eq!(jobs[0]["output_lines"]["stdout"], 1);
    let id = jobs[0]["id"].as_str().expect("id");
    assert!(cluster.cli.ok(&["logs", id]).await.stdout == out.stdout);

    let document = "import json; print(json.dumps({'items': [{'id': i, 'name': 'item %d' % i, \
                    'tags': ['a', 'b\\n', 'c']} for i in range(40000)]}, indent=None))";
    let local = std::process::Command::new("python3")
        .args(["-c", document])
        .output()
        .expect("python3");
    let expected = String::from_utf8(local.stdout).expect("utf-8");
    assert!(expected.len() > 1_000_000, "a large document");
    let out = cluster
        .cli
        .run(&["run", "--", "python3", "-c", document])
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout == expected, "the JSON came back as written");
    let parsed: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(parsed["items"].as_array().map(Vec::len), Some(40000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_pending_job_says_why_it_waits() {
    let cluster = TestCluster::start(1).await;
    let out = cluster
        .cli
        .ok(&["run", "--detach", "--mem", "64T", "--", "echo", "big"])
        .await;
    let id = out.stdout.trim().to_string();
    let logs = cluster.cli.ok(&["logs", &id]).await;
    assert!(
        logs.stderr.contains("is pending") && logs.stderr.contains("too little free memory"),
        "{logs:?}"
    );

    let mut follower = cluster
        .cli
        .command()
        .args(["logs", "-f", &id])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start reef logs -f");
    let mut lines = tokio::io::BufReader::new(follower.stderr.take().expect("stderr")).lines();
    let said = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a word on the wait in time")
        .expect("read")
        .unwrap_or_default();
    assert!(
        said.contains(&format!("job {id} is waiting")) && said.contains("too little free memory"),
        "{said}"
    );
    assert!(
        follower.try_wait().expect("wait").is_none(),
        "still following"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_logs_show_the_current_release_by_node_and_instance_and_all_shows_history() {
    let cluster = TestCluster::start(1).await;
    let app = cluster.dir.path().join("app");
    let deploy = |version: &'static str| {
        let app = app.clone();
        let cluster = &cluster;
        async move {
            write_app(&app, version, 200, "");
            let out = cluster
                .cli
                .run(&["deploy", app.to_str().expect("path")])
                .await;
            assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
        }
    };
    deploy("v1").await;
    deploy("v2").await;
    let is_prefixed = |line: &str| {
        line.strip_prefix("[node-1/")
            .and_then(|rest| rest.split_once("] "))
            .is_some_and(|(instance, _)| instance.len() == 6)
    };
    let current = eventually("v2's output", Duration::from_secs(20), || async {
        let out = cluster.cli.ok(&["logs", "hello"]).await.stdout;
        out.contains("starting v2").then_some(out)
    })
    .await;
    assert!(!current.contains("starting v1"), "{current}");
    assert!(current.lines().all(is_prefixed), "{current}");
    let all = cluster.cli.ok(&["logs", "hello", "--all"]).await.stdout;
    assert!(
        all.contains("starting v1") && all.contains("starting v2"),
        "{all}"
    );
    assert!(all.lines().all(is_prefixed), "{all}");

    // Following: a release deployed meanwhile is shown, by node and instance.
    let mut follower = cluster
        .cli
        .command()
        .args(["logs", "hello", "-f"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start reef logs -f");
    let mut lines = tokio::io::BufReader::new(follower.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the backlog in time")
        .expect("read")
        .unwrap_or_default();
    assert!(first.contains("starting v2"), "{first}");
    deploy("v3").await;
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines.next_line().await.expect("read").unwrap_or_default();
            if line.contains("starting v3") {
                return line;
            }
        }
    })
    .await
    .expect("v3's output while following");
    assert!(is_prefixed(&line), "{line}");
    drop(follower);

    // With no instance of the current release left, it says where the rest is.
    cluster
        .cli
        .run_with_timeout(&["stop", "hello"], Duration::from_secs(20))
        .await;
    let hint = eventually(
        "the stopped app's instances to end",
        Duration::from_secs(20),
        || async {
            let out = cluster.cli.ok(&["logs", "hello"]).await;
            out.stdout.is_empty().then_some(out.stderr)
        },
    )
    .await;
    assert!(hint.contains("reef logs hello --all"), "{hint}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deploy_reports_its_last_lines_in_the_order_written() {
    let cluster = TestCluster::start(1).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "bad", 500, "");
    // Each pair within microseconds, stdout first; then it never answers.
    std::fs::write(
        app.join("server.py"),
        "import sys, time\nfor i in range(1, 6):\n    print('out', i, flush=True)\n    \
         print('err', i, file=sys.stderr, flush=True)\n    time.sleep(0.1)\ntime.sleep(60)\n",
    )
    .expect("write app");
    let out = cluster
        .cli
        .run(&["deploy", app.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    let reported: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("  | "))
        .collect();
    assert_written_order(&reported, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_restarted_after_a_crash_keeps_both_runs_output() {
    let cluster = TestCluster::start(1).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "");
    let out = cluster
        .cli
        .run(&["deploy", app.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    let starts = |logs: &str| logs.lines().filter(|l| l.contains("starting v1")).count();
    eventually(
        "the first run's output",
        Duration::from_secs(20),
        || async { (starts(&cluster.cli.ok(&["logs", "hello"]).await.stdout) == 1).then_some(()) },
    )
    .await;
    let pids = cluster.agents[0].app_pids();
    assert_eq!(pids.len(), 1, "one app process: {pids:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the app");
    // The restarted process writes to the same instance's subject, its
    // batches numbered from the start again: both runs' lines are shown.
    let logs = eventually(
        "the second run's output",
        Duration::from_secs(40),
        || async {
            let logs = cluster.cli.ok(&["logs", "hello"]).await.stdout;
            (starts(&logs) == 2).then_some(logs)
        },
    )
    .await;
    let prefixes: Vec<&str> = logs
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(p, _)| p))
        .collect();
    assert!(
        prefixes.windows(2).all(|w| w[0] == w[1]),
        "one instance: {logs}"
    );
}
