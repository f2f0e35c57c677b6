//! The sandbox end to end, with real agents: what a job must not be able to
//! do (each attempt refused and the node unharmed), the limits the kernel
//! enforces, the network policy of contributed nodes, and GPU devices.

use reef_tests::process::{is_alive, pids_of};
use reef_tests::{eventually, Cli, NatsServer, ReefProcess};
use std::time::Duration;

/// A cluster of one coordinator and one agent `name` with `extra` flags.
struct One {
    nats: NatsServer,
    dir: tempfile::TempDir,
    _coordinator: ReefProcess,
    agent: ReefProcess,
    cli: Cli,
}

async fn one(name: &str, extra: &[&str]) -> One {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let agent = ReefProcess::agent(&nats.url, dir.path(), name, extra);
    let cli = Cli::new(&nats.url);
    cli.wait_for_nodes(1).await;
    One {
        nats,
        dir,
        _coordinator: coordinator,
        agent,
        cli,
    }
}

/// A job submitted with `reef run --detach ARGS` (flags, `--`, the command).
async fn submit(cli: &Cli, args: &[&str]) -> String {
    let mut full = vec!["run", "--detach"];
    full.extend_from_slice(args);
    cli.ok(&full).await.stdout.trim().to_string()
}

/// A job, run to its end: (exit code of `reef run`, stdout, stderr).
async fn run(cli: &Cli, args: &[&str]) -> (Option<i32>, String, String) {
    let mut full = vec!["run"];
    full.extend_from_slice(args);
    let out = cli.run(&full).await;
    (out.code, out.stdout, out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cannot_escape_its_sandbox_and_the_node_is_unharmed() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let agent = ReefProcess::agent(&nats.url, dir.path(), "node-1", &["--max-pids", "64"]);
    let cli = Cli::new(&nats.url);
    cli.wait_for_nodes(1).await;
    let data = dir.path().join("node-1");
    let nats_port = nats
        .url
        .to_string()
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();

    // A victim: another job with a secret in its environment and its files.
    let victim_script = "echo topsecret > secret; sleep 300";
    let victim = submit(
        &cli,
        &["--env", "SECRET=hunter2", "--", "sh", "-c", victim_script],
    )
    .await;
    let victim_pid = eventually("the victim to run", Duration::from_secs(20), || async {
        pids_of(&["sh", "-c", victim_script]).into_iter().next()
    })
    .await;
    let victim_alloc = cli.job(&victim).await["alloc"]
        .as_str()
        .expect("alloc")
        .to_string();
    let victim_dir = data.join("work").join(&victim_alloc);
    eventually("the victim's file", Duration::from_secs(10), || async {
        victim_dir.join("secret").exists().then_some(())
    })
    .await;
    let agent_pid = agent.pid().expect("agent pid");

    let attempts: Vec<(&str, String)> = vec![
        ("read the node's key", format!("cat {}/node.key", data.display())),
        ("list the agent's records", format!("ls {}/allocs", data.display())),
        ("read another job's files", format!("cat {}/secret", victim_dir.display())),
        (
            "read another job's environment",
            format!("cat /proc/{victim_pid}/environ | grep hunter2"),
        ),
        ("find a secret in any environment", "cat /proc/*/environ | grep -a hunter2".into()),
        ("write under /usr", "touch /usr/escaped".into()),
        ("write under /etc", "touch /etc/escaped".into()),
        ("signal the agent", format!("kill -0 {agent_pid}")),
        ("signal another job", format!("kill -9 {victim_pid}")),
        (
            "see another job's processes",
            r#"for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline; echo; done | grep top[s]ecret"#.into(),
        ),
        (
            "reach NATS without --network",
            format!(
                "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {nats_port}), timeout=2)\""
            ),
        ),
        ("make a user namespace", "unshare --user true".into()),
        ("make a mount namespace", "unshare --mount true".into()),
        // Calls the seccomp filter stops before the kernel sees them: each
        // one succeeds, or fails with an error other than EPERM, without it.
        ("use the kernel keyring", reaches_kernel("250, 0, -3, 0")),
        ("set up io_uring", reaches_kernel("425, 1, 0")),
        ("open perf events", reaches_kernel("298, 0, 0, 0, 0, 0")),
        ("open a vsock socket", reaches_kernel("41, 40, 1, 0")),
        ("use the x32 system calls", reaches_kernel("0x40000000 | 39")),
        ("become root", "test $(id -u) -eq 0".into()),
    ];
    for (what, script) in &attempts {
        let (code, out, err) = run(&cli, &["--", "sh", "-c", script]).await;
        assert_ne!(code, Some(0), "a job could {what}: {out} {err}");
    }
    assert!(is_alive(&victim_pid), "the victim survived every attempt");
    assert!(!std::path::Path::new("/usr/escaped").exists());
    // Its own directory is its own, and nothing else.
    let (code, out, _) = run(&cli, &["--", "sh", "-c", "touch mine && ls -a && id -u"]).await;
    assert_eq!(code, Some(0));
    let uid: u32 = out.lines().last().expect("uid").parse().expect("a uid");
    assert!(uid >= 2_000_000_000, "runs as an unprivileged uid: {out}");

    // More memory than --mem: failed, out of memory; the node keeps going.
    let (code, _, err) = run(
        &cli,
        &[
            "--mem",
            "32M",
            "--",
            "python3",
            "-c",
            "x = bytearray(256 << 20); print(len(x))",
        ],
    )
    .await;
    assert_eq!(code, Some(124), "{err}");
    assert!(err.contains("out of memory (limit 32 MiB)"), "{err}");

    // A fork bomb stays inside its process limit and is reported.
    let bomb = submit(
        &cli,
        &[
            "--timeout",
            "3s",
            "--",
            "sh",
            "-c",
            "b() { b | b & }; b; sleep 10",
        ],
    )
    .await;
    let job = cli.wait_for_end(&bomb, Duration::from_secs(30)).await;
    assert!(
        job["usage"]["pids_limit_hits"].as_u64().unwrap_or(0) > 0,
        "the bomb hit its limit: {job}"
    );
    let status = cli.ok(&["job", "status", &bomb]).await.stdout;
    assert!(status.contains("process limit"), "{status}");

    // A CPU hog given half a core gets about that, never more.
    let hog = submit(
        &cli,
        &[
            "--cpu",
            "0.5",
            "--timeout",
            "3s",
            "--",
            "sh",
            "-c",
            "while :; do :; done",
        ],
    )
    .await;
    let job = cli.wait_for_end(&hog, Duration::from_secs(30)).await;
    let cpu_ms = job["usage"]["cpu_ms"].as_u64().expect("cpu used");
    let wall_ms = job["finished_at_ms"].as_u64().expect("end")
        - job["started_at_ms"].as_u64().expect("start");
    let share = cpu_ms as f64 / wall_ms as f64;
    assert!(
        share > 0.05 && share < 0.65,
        "used {cpu_ms} ms of CPU in {wall_ms} ms: {job}"
    );

    // Through all of it the node stayed healthy and runs work.
    let (code, out, _) = run(&cli, &["--", "echo", "still here"]).await;
    assert_eq!((code, out.as_str()), (Some(0), "still here\n"));
    assert!(is_alive(&agent_pid.to_string()));
    cli.ok(&["job", "stop", &victim]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contributed_nodes_give_jobs_the_network_only_when_their_owner_allows() {
    let One {
        nats,
        dir,
        agent: _lent,
        cli,
        _coordinator,
    } = one("lent", &["--trust", "contributed"]).await;
    let port = nats
        .url
        .to_string()
        .rsplit(':')
        .next()
        .expect("port")
        .to_string();
    let connect = format!(
        "import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')"
    );
    // No network: the connection fails inside the job.
    let (code, _, _) = run(
        &cli,
        &["--trust", "contributed", "--", "python3", "-c", &connect],
    )
    .await;
    assert_ne!(code, Some(0));
    // Asking for it on a node whose owner did not allow it: it waits, and says why.
    let id = cli
        .ok(&[
            "run",
            "--detach",
            "--network",
            "--trust",
            "contributed",
            "--",
            "python3",
            "-c",
            &connect,
        ])
        .await
        .stdout
        .trim()
        .to_string();
    let job = cli.job(&id).await;
    assert_eq!(job["state"], "pending", "{job}");
    assert!(
        job["reason"]
            .as_str()
            .unwrap_or("")
            .contains("--allow-network"),
        "{job}"
    );
    // An owner who allows it: the job runs there and connects.
    let _open = ReefProcess::agent(
        &nats.url,
        dir.path(),
        "open",
        &["--trust", "contributed", "--allow-network"],
    );
    let job = cli.wait_for_end(&id, Duration::from_secs(30)).await;
    assert_eq!(job["exit_code"], 0, "{job}");
    assert_eq!(job["node_name"], "open");
    assert_eq!(cli.ok(&["logs", &id]).await.stdout, "connected\n");
    let nodes = cli.ok(&["nodes", "--json"]).await.json();
    let open = nodes
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "open")
        .expect("open");
    assert_eq!(open["sandbox"], true, "{open}");
    assert_eq!(open["job_network"], true, "{open}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_job_sees_only_its_own_device() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A fake rig: nvidia-smi reports two GPUs, and a device directory holds
    // their nodes and the shared control devices.
    let devices = dir.path().join("dev");
    std::fs::create_dir_all(&devices).expect("mkdir");
    for name in ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"] {
        std::fs::write(devices.join(name), name).expect("device");
    }
    let path = reef_tests::gpu::fake_rig_path(dir.path());
    let devices = devices.display().to_string();
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let _rig = ReefProcess::agent_with_env(
        &nats.url,
        dir.path(),
        "rig",
        &["--gpu-device-dir", &devices],
        &[("PATH", &path)],
    );
    let cli = Cli::new(&nats.url);
    cli.wait_for_nodes(1).await;
    // GPU 0 is taken by a first job; the second gets GPU 1.
    let first = submit(&cli, &["--gpus", "1", "--", "sleep", "300"]).await;
    eventually(
        "the first GPU job to run",
        Duration::from_secs(20),
        || async { (cli.job(&first).await["state"] == "running").then_some(()) },
    )
    .await;
    let (code, out, err) = run(
        &cli,
        &[
            "--gpus",
            "1",
            "--",
            "sh",
            "-c",
            "echo $CUDA_VISIBLE_DEVICES; ls /dev | grep nvidia; cat /dev/nvidia1",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{err}");
    // The fake device holds its name without a newline, and output comes
    // back as written.
    assert_eq!(out, "1\nnvidia-uvm\nnvidia1\nnvidiactl\nnvidia1", "{out}");
    cli.ok(&["job", "stop", &first]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_pauses_and_resumes_the_machine_from_the_machine_itself() {
    let One {
        nats: _nats,
        dir,
        agent: _lent,
        cli,
        _coordinator,
    } = one("lent", &["--trust", "contributed"]).await;
    let data = dir.path().join("lent").display().to_string();
    let running = submit(&cli, &["--", "sleep", "300"]).await;
    eventually("the job to run", Duration::from_secs(20), || async {
        (cli.job(&running).await["state"] == "running").then_some(())
    })
    .await;

    // Paused: no new work within a heartbeat or so; what runs keeps running.
    let out = cli.ok(&["agent", "pause", "--data-dir", &data]).await;
    assert!(out.stdout.contains("paused"), "{out:?}");
    eventually(
        "the node to show paused",
        Duration::from_secs(10),
        || async {
            let nodes = cli.nodes().await;
            (nodes.first()?["paused"] == true).then_some(())
        },
    )
    .await;
    let table = cli.ok(&["nodes"]).await.stdout;
    assert!(table.contains("(paused)"), "{table}");
    let waiting = submit(&cli, &["--", "echo", "later"]).await;
    let job = cli.job(&waiting).await;
    assert_eq!(job["state"], "pending", "{job}");
    assert!(
        job["reason"].as_str().unwrap_or("").contains("paused"),
        "{job}"
    );
    assert_eq!(cli.job(&running).await["state"], "running");

    // Taking the machine back stops its jobs: lost, saying why.
    cli.ok(&["agent", "pause", "--stop-jobs", "--data-dir", &data])
        .await;
    let job = cli.wait_for_end(&running, Duration::from_secs(20)).await;
    assert_eq!(job["state"], "lost", "{job}");
    assert!(
        job["reason"].as_str().unwrap_or("").contains("owner"),
        "{job}"
    );
    assert_eq!(cli.job(&waiting).await["state"], "pending");

    // Resumed: the waiting job runs.
    let out = cli.ok(&["agent", "resume", "--data-dir", &data]).await;
    assert!(out.stdout.contains("resumed"), "{out:?}");
    let job = cli.wait_for_end(&waiting, Duration::from_secs(20)).await;
    assert_eq!(job["exit_code"], 0, "{job}");
    // A directory that is no agent's is refused, naming it.
    let out = cli
        .run(&["agent", "pause", "--data-dir", "/nonexistent"])
        .await;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("not an agent's data directory"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_refuses_to_run_work_unsafely_and_says_why() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    // A contributed node never runs without the sandbox.
    let lent = ReefProcess::agent(
        &nats.url,
        dir.path(),
        "lent",
        &["--trust", "contributed", "--sandbox", "off"],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !lent.log_text().contains("reef: ") {
        assert!(
            std::time::Instant::now() < deadline,
            "no refusal: {}",
            lent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        lent.log_text()
            .contains("a contributed node always runs its work in the sandbox"),
        "{}",
        lent.log_text()
    );
    // A sandbox it cannot set up: the agent says what is missing and how
    // to run without it.
    let broken = ReefProcess::agent(
        &nats.url,
        dir.path(),
        "broken",
        &["--sandbox-bind", "/nonexistent/scratch"],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !broken.log_text().contains("reef: ") {
        assert!(
            std::time::Instant::now() < deadline,
            "no refusal: {}",
            broken.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = broken.log_text();
    assert!(log.contains("/nonexistent/scratch"), "{log}");
    assert!(log.contains("--sandbox off"), "{log}");
    // A dedicated node run with --sandbox off says so, and its work runs as
    // the agent's user.
    let _bare = ReefProcess::agent(&nats.url, dir.path(), "bare", &["--sandbox", "off"]);
    let cli = Cli::new(&nats.url);
    let nodes = cli.wait_for_nodes(1).await;
    assert_eq!(nodes[0]["sandbox"], false, "{nodes:?}");
    let table = cli.ok(&["nodes"]).await.stdout;
    assert!(table.contains("dedicated (no sandbox)"), "{table}");
    let (code, out, _) = run(&cli, &["--", "id", "-u"]).await;
    assert_eq!((code, out.as_str()), (Some(0), "0\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_runs_as_its_own_uid_with_its_release_read_only_and_its_data_writable() {
    use std::os::unix::fs::MetadataExt;
    let cluster = reef_tests::TestCluster::start(1).await;
    let app = cluster.dir.path().join("app");
    // The hook runs in the app's sandbox: it succeeds only if the release
    // cannot be written, the data dir can, and it is not root.
    let check = r#"pre_start = "! touch ./escaped 2>/dev/null && touch \"$REEF_DATA_DIR/ok\" && test \"$(id -u)\" -ge 2000000000""#;
    reef_tests::app::write_app(&app, "v1", 200, &format!("{check}\n"));
    cluster
        .cli
        .ok(&["deploy", app.to_str().expect("path")])
        .await;
    let data = cluster.dir.path().join("node-1/apps/hello/data");
    let owner = std::fs::metadata(data.join("ok"))
        .expect("the hook wrote its data dir")
        .uid();
    assert!(owner >= 2_000_000_000, "owned by the app's uid: {owner}");
    let releases = cluster.dir.path().join("node-1/apps/hello/releases");
    for release in std::fs::read_dir(&releases).expect("releases").flatten() {
        assert!(!release.path().join("escaped").exists());
        assert_eq!(
            release.metadata().expect("release").uid(),
            0,
            "the release stays the agent's"
        );
    }
    // A new release runs as the same uid, so its data stays its own.
    reef_tests::app::write_app(&app, "v2", 200, &format!("{check}\n"));
    cluster
        .cli
        .ok(&["deploy", app.to_str().expect("path")])
        .await;
    assert_eq!(std::fs::metadata(data.join("ok")).expect("ok").uid(), owner);
    assert_eq!(std::fs::metadata(&data).expect("data").uid(), owner);
    // Its processes run as that uid too.
    // (Once the old release, draining after the blue-green switch, is gone.)
    let pids = eventually("one app process", Duration::from_secs(20), || async {
        let pids = cluster.agents[0].app_pids();
        (pids.len() == 1).then_some(pids)
    })
    .await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pids[0])).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("uid");
    assert!(uid_line.contains(&owner.to_string()), "{uid_line}");
    let nnp = status
        .lines()
        .find(|l| l.starts_with("NoNewPrivs:"))
        .expect("nnp");
    assert!(nnp.ends_with('1'), "{nnp}");
}

/// A script that makes the system call `call` (number and arguments, as
/// Python's `syscall(2)` takes them) and succeeds if the kernel saw it:
/// it returned, or failed with anything but the filter's EPERM.
fn reaches_kernel(call: &str) -> String {
    format!(
        "python3 -c \"import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); \
         r = libc.syscall({call}); sys.exit(0 if r >= 0 or ctypes.get_errno() != 1 else 1)\""
    )
}
