//! Deploying apps end to end: `reef deploy` of a real directory, a real
//! HTTP app (python3), reached through a node's proxy by Host header.

use reef_tests::app::{process_in, still_serving, write_app};
use reef_tests::probe::Prober;
use reef_tests::{api, eventually, http, TestCluster};
use std::path::Path;
use std::time::Duration;

async fn body(port: u16) -> Option<String> {
    http::get(port, "hello.test", "/")
        .await
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_serves_through_the_proxy_and_redeploys_without_a_failed_request() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let v1 = cluster.dir.path().join("v1");
    write_app(&v1, "v1", 200, "");

    // Nothing deployed: the proxy says so.
    let unknown = http::get(port, "hello.test", "/")
        .await
        .expect("proxy answers");
    assert_eq!(unknown.status, 404, "{unknown:?}");

    let out = cluster
        .cli
        .run(&["deploy", v1.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    let first = body(port).await.expect("v1 answers through the proxy");
    assert!(first.starts_with("v1 "), "{first}");

    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    assert_eq!(status["release"], 1);
    let instances = status["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0]["state"], "healthy");

    // Redeploy while a client hammers the proxy: no request may fail.
    let v2 = cluster.dir.path().join("v2");
    write_app(&v2, "v2", 200, "");
    let prober = Prober::start(port, "hello.test");
    let out = cluster
        .cli
        .run(&["deploy", v2.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    // Keep the client going until it has seen v2 for a while.
    eventually("the client to see v2", Duration::from_secs(20), || async {
        (prober.seen().last().map(String::as_str) == Some("v2")).then_some(())
    })
    .await;
    let after = prober.ok();
    eventually(
        "more requests after the switch",
        Duration::from_secs(20),
        || async { (prober.ok() > after + 20).then_some(()) },
    )
    .await;
    let probed = prober.finish().await;
    let (failed, seen) = (probed.failed, probed.seen);
    assert_eq!(failed, 0, "no request failed during the redeploy");
    assert_eq!(
        seen,
        vec!["v1".to_string(), "v2".into()],
        "v1 then v2, never back"
    );

    // The old instance is gone; one healthy v2 instance remains.
    let status = eventually(
        "only the v2 instance to remain",
        Duration::from_secs(20),
        || async {
            let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
            (status["instances"].as_array().map(Vec::len) == Some(1)).then_some(status)
        },
    )
    .await;
    assert_eq!(status["release"], 2);
    assert_eq!(status["instances"][0]["release"], 2);
    let releases = cluster.cli.ok(&["releases", "hello"]).await;
    assert!(
        releases
            .stdout
            .lines()
            .any(|l| l.starts_with("2 ") && l.contains(" current ")),
        "{releases:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_fails_its_health_check_never_gets_traffic() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let v1 = cluster.dir.path().join("v1");
    write_app(&v1, "v1", 200, "");
    cluster
        .cli
        .ok(&["deploy", v1.to_str().expect("path")])
        .await;
    let before = body(port).await.expect("v1 serves");

    let bad = cluster.dir.path().join("bad");
    // It answers 500 from its first request; the 100 attempts (5 s) leave
    // room for a slow python start on a busy machine.
    write_app(&bad, "bad", 500, "");
    let out = cluster
        .cli
        .run(&["deploy", bad.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("health check failed"), "{}", out.stderr);
    assert!(
        out.stderr.contains("answered 500"),
        "says what the check saw: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("starting bad"),
        "shows the app's last log lines: {}",
        out.stderr
    );
    assert_eq!(
        body(port).await.as_deref(),
        Some(before.as_str()),
        "the same v1 process keeps serving"
    );

    // A failing pre_start aborts the deploy the same way.
    let hook = cluster.dir.path().join("hook");
    write_app(
        &hook,
        "hook",
        200,
        "pre_start = \"echo migrating; exit 9\"\n",
    );
    let out = cluster
        .cli
        .run(&["deploy", hook.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("pre_start"), "{}", out.stderr);
    assert!(out.stderr.contains("exited with 9"), "{}", out.stderr);
    assert!(out.stderr.contains("migrating"), "{}", out.stderr);
    assert_eq!(body(port).await.as_deref(), Some(before.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_instance_is_restarted_and_counted() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let v1 = cluster.dir.path().join("v1");
    write_app(&v1, "v1", 200, "");
    cluster
        .cli
        .ok(&["deploy", v1.to_str().expect("path")])
        .await;
    let first = body(port).await.expect("serves");
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    let instance = status["instances"][0]["id"]
        .as_str()
        .expect("instance")
        .to_string();
    let pids = reef_tests::app::instance_pids(&instance);
    assert_eq!(pids.len(), 1, "one app process: {pids:?}");
    let pid: i32 = pids[0].parse().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill app");

    let status = eventually(
        "the instance to be restarted and healthy",
        Duration::from_secs(30),
        || async {
            let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
            let instance = &status["instances"][0];
            (instance["state"] == "healthy" && instance["restarts"] == 1).then_some(status)
        },
    )
    .await;
    let message = status["instances"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("exited with code 137"), "{message}");
    let again = body(port).await.expect("serves again");
    assert_ne!(again, first, "a new process answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restart_brings_the_app_back_without_a_second_copy() {
    let mut cluster = TestCluster::start(1).await;
    let v1 = cluster.dir.path().join("v1");
    write_app(&v1, "v1", 200, "");
    cluster
        .cli
        .ok(&["deploy", v1.to_str().expect("path")])
        .await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let first = body(port).await.expect("serves");
    let old = process_in(&first);

    cluster.agents[0].kill();
    cluster.agents[0].restart();
    let again = eventually(
        "the app to serve again after the agent restart",
        Duration::from_secs(30),
        || async { body(port).await },
    )
    .await;
    assert!(again.starts_with("v1 "), "{again}");
    eventually(
        "the old process to be gone",
        Duration::from_secs(10),
        || async { (!still_serving(&old)).then_some(()) },
    )
    .await;
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    let instances = status["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 1, "one instance, not two: {status}");
    // Exactly one python server of this app runs on the machine.
    let mut count = 0;
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        // The app itself, not the sandbox's processes around it.
        if cmdline.starts_with(b"python3\0")
            && cmdline.windows(9).any(|w| w == b"server.py")
            && cwd.starts_with(cluster.dir.path())
        {
            count += 1;
        }
    }
    assert_eq!(count, 1, "exactly one copy of the app runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_deploys_stop_the_old_release_first_and_bring_it_back_on_failure() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let sequential = "strategy = \"sequential\"\n[env]\nDATA_FILE = \"${data_dir}/boots\"\n";
    let v1 = cluster.dir.path().join("v1");
    write_app(&v1, "v1", 200, sequential);
    cluster
        .cli
        .ok(&["deploy", v1.to_str().expect("path")])
        .await;
    assert!(body(port).await.expect("v1").starts_with("v1 "));

    let prober = Prober::start(port, "hello.test");
    eventually("the prober to see v1", Duration::from_secs(10), || async {
        (!prober.seen().is_empty()).then_some(())
    })
    .await;
    let v2 = cluster.dir.path().join("v2");
    write_app(&v2, "v2", 200, sequential);
    let out = cluster
        .cli
        .run(&["deploy", v2.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    eventually("the prober to see v2", Duration::from_secs(20), || async {
        (prober.seen().last().map(String::as_str) == Some("v2")).then_some(())
    })
    .await;
    let probed = prober.finish().await;
    let (failed, gap, seen) = (probed.failed, probed.longest_gap, probed.seen);
    assert_eq!(seen, vec!["v1".to_string(), "v2".into()]);
    println!("sequential deploy: {failed} failed requests, longest gap without a success {gap:?}");
    assert!(
        gap < Duration::from_secs(10),
        "the unavailability window is bounded: {gap:?}"
    );
    // v2 found what v1 wrote in ${data_dir}: the directory survives deploys.
    let v2_body = body(port).await.expect("v2 serves");
    assert!(v2_body.contains("v1,v2,"), "{v2_body}");

    // A failing sequential release brings the previous one back.
    let bad = cluster.dir.path().join("bad");
    write_app(&bad, "bad", 500, sequential);
    let out = cluster
        .cli
        .run(&["deploy", bad.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("health check failed"), "{}", out.stderr);
    let back = eventually("v2 to serve again", Duration::from_secs(20), || async {
        body(port).await.filter(|b| b.starts_with("v2 "))
    })
    .await;
    assert_ne!(back, v2_body, "v2 was started again (new process)");
}

/// The proxy port of the agent named `name` (`node-N` is `agents[N-1]`).
fn proxy_of(cluster: &TestCluster, name: &str) -> u16 {
    let n: usize = name.trim_start_matches("node-").parse().expect("node-N");
    cluster.agents[n - 1].http_port.expect("proxy port")
}

async fn healthy_nodes(cluster: &TestCluster, count: usize) -> Vec<String> {
    eventually(
        &format!("{count} healthy instances"),
        Duration::from_secs(30),
        || async {
            let (healthy, live) = reef_tests::app::healthy_on(&cluster.cli).await;
            (live == count && healthy.len() == count).then_some(healthy)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_scale_stop_start_and_destroy() {
    let cluster = TestCluster::start(2).await;
    for version in ["v1", "v2"] {
        let dir = cluster.dir.path().join(version);
        write_app(&dir, version, 200, "");
        cluster
            .cli
            .ok(&["deploy", dir.to_str().expect("path")])
            .await;
    }
    let node = healthy_nodes(&cluster, 1).await.remove(0);
    assert!(body(proxy_of(&cluster, &node))
        .await
        .expect("serves")
        .starts_with("v2 "));

    // Rollback: a new release 3 that copies release 1.
    let out = cluster.cli.run(&["rollback", "hello"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("a copy of release 1"), "{}", out.stderr);
    let node = healthy_nodes(&cluster, 1).await.remove(0);
    assert!(body(proxy_of(&cluster, &node))
        .await
        .expect("serves")
        .starts_with("v1 "));
    let releases = cluster.cli.ok(&["releases", "hello"]).await.stdout;
    assert!(
        releases
            .lines()
            .any(|l| l.starts_with("3 ") && l.contains(" current ") && l.contains("copy of 1")),
        "{releases}"
    );

    // Scale out: the second replica goes to the other node.
    cluster.cli.ok(&["scale", "hello", "2"]).await;
    let mut nodes = healthy_nodes(&cluster, 2).await;
    nodes.sort();
    assert_eq!(
        nodes,
        vec!["node-1".to_string(), "node-2".into()],
        "replicas spread"
    );
    for node in &nodes {
        assert!(body(proxy_of(&cluster, node))
            .await
            .expect("serves")
            .starts_with("v1 "));
    }

    // Stop: the hosts still belong to the app, which has nothing running.
    let out = cluster
        .cli
        .run_with_timeout(&["stop", "hello"], Duration::from_secs(20))
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    for node in &nodes {
        let r = http::get(proxy_of(&cluster, node), "hello.test", "/")
            .await
            .expect("proxy answers");
        assert_eq!(r.status, 503, "{r:?}");
    }
    let out = cluster.cli.run(&["scale", "hello", "3"]).await;
    assert_ne!(out.code, Some(0), "a stopped app is not scaled: {out:?}");

    // Start: back to two replicas of the current release; once more, and
    // it says there is nothing to start.
    cluster.cli.ok(&["start", "hello"]).await;
    healthy_nodes(&cluster, 2).await;
    let again = cluster.cli.ok(&["start", "hello"]).await;
    assert!(again.stderr.contains("nothing new to start"), "{again:?}");

    // Destroy: refused without --yes when there is no terminal to ask on;
    // then gone, and its hosts are unknown again.
    let out = cluster.cli.run(&["destroy", "hello"]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("pass --yes"), "{out:?}");
    let out = cluster
        .cli
        .run_with_timeout(&["destroy", "hello", "--yes"], Duration::from_secs(20))
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    for node in &nodes {
        let r = eventually(
            "the proxy to forget the app",
            Duration::from_secs(10),
            || async {
                http::get(proxy_of(&cluster, node), "hello.test", "/")
                    .await
                    .ok()
                    .filter(|r| r.status == 404)
            },
        )
        .await;
        assert_eq!(r.status, 404);
    }
    let out = cluster.cli.run(&["status", "hello"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("no app hello"), "{}", out.stderr);
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() {
            if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_the_app_and_nothing_else() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let secret = "s3cret-Value-71f2c9";
    // Before the app's first deploy a secret needs --create.
    let out = cluster
        .cli
        .run_with_stdin(&["secrets", "set", "hello", "api-key"], b"x")
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("no app hello") && out.stderr.contains("--create"),
        "{out:?}"
    );
    let out = cluster
        .cli
        .run_with_stdin(
            &["secrets", "set", "hello", "api-key", "--create"],
            format!("{secret}\n").as_bytes(),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "secret api-key set for hello\n");
    assert_eq!(
        cluster.cli.ok(&["secrets", "list", "hello"]).await.stdout,
        "api-key\n"
    );

    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "[env]\nAPI_KEY = \"${secret:api-key}\"\n");
    let out = cluster
        .cli
        .run(&["deploy", app.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    let r = http::get(port, "hello.test", "/env/API_KEY")
        .await
        .expect("answers");
    assert_eq!(r.body, secret, "the app sees the secret");

    // Nowhere else in the clear: not in any JetStream stream (KV buckets,
    // logs, events, assignments), not on the agent's disk, not in ps.
    let client = cluster.nats.url.connect().await;
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = futures::StreamExt::collect::<Vec<_>>(js.stream_names())
        .await
        .into_iter()
        .map(|n| n.expect("name"))
        .collect();
    assert!(names.iter().any(|n| n == "KV_reef-secrets"), "{names:?}");
    for name in &names {
        let mut stream = js.get_stream(name).await.expect("stream");
        let info = stream.info().await.expect("info").clone();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            if let Ok(msg) = stream.get_raw_message(seq).await {
                assert!(
                    !msg.payload
                        .windows(secret.len())
                        .any(|w| w == secret.as_bytes()),
                    "secret in the clear in stream {name} at {seq}"
                );
            }
        }
    }
    let leaks = files_containing(&cluster.dir.path().join("node-1"), secret.as_bytes());
    assert!(
        leaks.is_empty(),
        "secret in the clear on the agent's disk: {leaks:?}"
    );
    let ps = std::process::Command::new("ps")
        .args(["axww", "-o", "args"])
        .output()
        .expect("ps");
    assert!(
        !String::from_utf8_lossy(&ps.stdout).contains(secret),
        "secret in ps output"
    );

    // A release that needs a secret that is not set is refused up front.
    let other = cluster.dir.path().join("other");
    write_app(&other, "v2", 200, "[env]\nTOKEN = \"${secret:missing}\"\n");
    let out = cluster
        .cli
        .run(&["deploy", other.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("secret missing of hello is not set"),
        "{}",
        out.stderr
    );

    cluster.cli.ok(&["secrets", "rm", "hello", "api-key"]).await;
    assert_eq!(
        cluster.cli.ok(&["secrets", "list", "hello"]).await.stdout,
        ""
    );

    // Destroying the app takes its secrets with it.
    let out = cluster
        .cli
        .run_with_stdin(&["secrets", "set", "hello", "other"], b"v")
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = cluster
        .cli
        .run_with_timeout(&["destroy", "hello", "--yes"], Duration::from_secs(20))
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        cluster.cli.ok(&["secrets", "list", "hello"]).await.stdout,
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_deploy_runs_once_and_logs_show_every_replica() {
    let cluster = TestCluster::start(2).await;
    let app = cluster.dir.path().join("app");
    write_app(
        &app,
        "v1",
        200,
        "replicas = 2\npost_deploy = \"echo hook ran >> $REEF_DATA_DIR/hooks; echo post-deploy-output\"\n",
    );
    let out = cluster
        .cli
        .run(&["deploy", app.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    assert!(
        out.stderr.contains("post_deploy succeeded"),
        "{}",
        out.stderr
    );
    let hooks: usize = ["node-1", "node-2"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(cluster.dir.path().join(n).join("apps/hello/data/hooks"))
                .map(|t| t.lines().count())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(hooks, 1, "post_deploy ran exactly once for the release");

    let logs = cluster.cli.ok(&["logs", "hello"]).await.stdout;
    for node in ["node-1", "node-2"] {
        assert!(
            logs.lines()
                .any(|l| l.starts_with(&format!("[{node}/")) && l.contains("starting v1")),
            "every replica's lines, prefixed: {logs}"
        );
    }
    assert!(logs.contains("post-deploy-output"), "{logs}");
    let tail = cluster
        .cli
        .ok(&["logs", "hello", "--tail", "1"])
        .await
        .stdout;
    assert_eq!(tail.lines().count(), 1, "{tail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beam_releases_run_bin_release_in_the_foreground() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let app = cluster.dir.path().join("beam");
    write_app(&app, "beam", 200, "");
    // An Elixir-style release: bin/<release> start runs in the foreground.
    std::fs::create_dir_all(app.join("bin")).expect("mkdir");
    let launcher = app.join("bin/hello_app");
    std::fs::write(&launcher, "#!/bin/sh\n[ \"$1\" = start ] || exit 64\ncd \"$(dirname \"$0\")/..\"\nexec python3 server.py\n")
        .expect("write launcher");
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let manifest = std::fs::read_to_string(app.join("Reef.toml"))
        .expect("read")
        .replace(
            "command = [\"python3\", \"server.py\"]",
            "type = \"beam\"\nrelease = \"hello_app\"",
        );
    std::fs::write(app.join("Reef.toml"), manifest).expect("write");
    let out = cluster
        .cli
        .run(&["deploy", app.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    assert!(body(port).await.expect("serves").starts_with("beam "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_that_escapes_its_directory_is_refused_on_the_node() {
    use reef_proto::api::{ApiRequest, ApiResponse};
    use reef_proto::app::{ArtifactRef, Instance, InstanceState};
    let cluster = TestCluster::start(1).await;
    let client = cluster.nats.url.connect().await;
    let js = async_nats::jetstream::new(client.clone());
    let store = js
        .get_object_store(reef_proto::subjects::ARTIFACTS_STORE)
        .await
        .expect("artifact store");
    let cases = [
        ("dotdot", "t.addfile(entry('../evil'), io.BytesIO(b'x'))"),
        ("absolute", "t.addfile(entry('/tmp/reef-evil-absolute'), io.BytesIO(b'x'))"),
        ("symlink", "e = entry('link'); e.type = tarfile.SYMTYPE; e.linkname = '../../..'; e.size = 0; t.addfile(e)"),
    ];
    for (name, add) in cases {
        let path = cluster.dir.path().join(format!("{name}.tar.gz"));
        // Python's tarfile writes the hostile entries a careful packer never would.
        let script = format!(
            "import io, tarfile\ndef entry(n):\n    e = tarfile.TarInfo(n); e.size = 1; return e\nwith tarfile.open({:?}, 'w:gz') as t:\n    {add}\n",
            path.display().to_string()
        );
        let status = std::process::Command::new("python3")
            .args(["-c", &script])
            .status()
            .expect("python3");
        assert!(status.success());
        let bytes = std::fs::read(&path).expect("read tarball");
        let digest = reef_artifact::sha256_hex(&bytes[..]).expect("digest");
        store
            .put(digest.as_str(), &mut &bytes[..])
            .await
            .expect("upload");
        let spec = reef_proto::manifest::parse(
            "[app]\nname = \"hello\"\n[deploy]\ncommand = [\"true\"]\n",
        )
        .expect("manifest");
        let reply = api::call(
            &client,
            ApiRequest::DeployApp {
                spec: Box::new(spec),
                artifact: ArtifactRef {
                    digest,
                    size: bytes.len() as u64,
                },
            },
        )
        .await;
        let Ok(ApiResponse::Deploying { instances, .. }) = reply.0 else {
            panic!("deploy refused up front: {reply:?}");
        };
        let bucket = js
            .get_key_value(reef_proto::subjects::INSTANCES_BUCKET)
            .await
            .expect("bucket");
        let id = instances[0].id.to_string();
        let state = eventually(
            &format!("the {name} instance to fail"),
            Duration::from_secs(20),
            || async {
                let value = bucket.get(id.as_str()).await.ok()??;
                let instance = reef_proto::decode::<Instance>(&value).ok()?;
                instance.state.is_terminal().then_some(instance.state)
            },
        )
        .await;
        let InstanceState::Failed { reason } = state else {
            panic!("{name}: expected a failure, got {state:?}");
        };
        assert!(reason.contains("unpacking the release"), "{name}: {reason}");
    }
    assert!(!cluster.dir.path().join("node-1/apps/hello/evil").exists());
    assert!(!std::path::Path::new("/tmp/reef-evil-absolute").exists());
    let releases = cluster.dir.path().join("node-1/apps/hello/releases");
    let leftovers: Vec<_> = std::fs::read_dir(&releases)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "nothing was unpacked: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_s_replicas_are_replaced_elsewhere_and_stale_copies_stop_on_return() {
    let mut cluster = TestCluster::start(4).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "replicas = 2\n");
    cluster
        .cli
        .ok(&["deploy", app.to_str().expect("path")])
        .await;
    let mut before = healthy_nodes(&cluster, 2).await;
    before.sort();
    assert_ne!(before[0], before[1], "replicas on different nodes");

    // kill -9 the agent of one replica (its app process lives on, orphaned).
    let victim = before[0].clone();
    let stale_pid = process_in(&body(proxy_of(&cluster, &victim)).await.expect("serves"));
    let index: usize = victim
        .trim_start_matches("node-")
        .parse::<usize>()
        .expect("node-N")
        - 1;
    cluster.agents[index].kill();
    let killed_at = std::time::Instant::now();
    let after = eventually(
        "a replacement to be healthy on another node",
        Duration::from_secs(15),
        || async {
            let (healthy, _) = reef_tests::app::healthy_on(&cluster.cli).await;
            (healthy.len() == 2 && !healthy.contains(&victim)).then_some(healthy)
        },
    )
    .await;
    let recovery = killed_at.elapsed();
    println!("node loss: replacement healthy after {recovery:?}");
    assert!(
        recovery < Duration::from_secs(10),
        "replaced within 10 s: {recovery:?}"
    );
    for node in &after {
        assert!(body(proxy_of(&cluster, node))
            .await
            .expect("serves")
            .starts_with("v1 "));
    }

    // Every surviving proxy serves the app; the node that runs no replica
    // forwards, to the replacement among others, and no longer to the lost node.
    let replacement = after
        .iter()
        .find(|n| !before.contains(n))
        .expect("the replacement is on a node that had no replica");
    let replacement_pid = process_in(&body(proxy_of(&cluster, replacement)).await.expect("serves"));
    let idle = (1..=4)
        .map(|i| format!("node-{i}"))
        .find(|n| *n != victim && !after.contains(n))
        .expect("one node runs no replica");
    let idle_port = proxy_of(&cluster, &idle);
    eventually(
        &format!("{idle} to forward to the replacement"),
        Duration::from_secs(10),
        || async {
            body(idle_port)
                .await
                .filter(|b| process_in(b) == replacement_pid)
        },
    )
    .await;
    let mut surviving_pids = Vec::new();
    for node in &after {
        surviving_pids.push(process_in(
            &body(proxy_of(&cluster, node)).await.expect("serves"),
        ));
    }
    for _ in 0..20 {
        let served = body(idle_port).await.expect("forwarded");
        assert!(
            surviving_pids.contains(&process_in(&served)),
            "{served} comes from a surviving replica {surviving_pids:?}"
        );
    }

    // The node comes back: its stale copy stops; exactly two replicas remain,
    // and its proxy forwards to them.
    cluster.agents[index].restart();
    cluster.cli.wait_for_nodes(4).await;
    eventually(
        "the returned node's stale copy to stop",
        Duration::from_secs(20),
        || async { (!still_serving(&stale_pid)).then_some(()) },
    )
    .await;
    let port = cluster.agents[index].http_port.expect("proxy port");
    eventually(
        "the returned node to forward to the replicas",
        Duration::from_secs(20),
        || async {
            body(port)
                .await
                .filter(|b| surviving_pids.contains(&process_in(b)))
        },
    )
    .await;
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    let live: Vec<&serde_json::Value> = status["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .collect();
    assert_eq!(live.len(), 2, "exactly the desired replicas: {status}");
    assert!(
        live.iter().all(|i| i["node_name"] != victim.as_str()),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_cannot_take_another_apps_domain() {
    let cluster = TestCluster::start(1).await;
    let hello = cluster.dir.path().join("hello");
    write_app(&hello, "v1", 200, "");
    cluster.deploy(&hello).await;
    let port = cluster.agents[0].http_port.expect("proxy");
    eventually("hello to serve", Duration::from_secs(30), || body(port)).await;

    // Another app that lists hello's domain is refused, and nothing of it
    // is recorded.
    let dup = cluster.dir.path().join("dup");
    reef_tests::app::write_named_app(&dup, "dup", &["dup.test", "hello.test"], "", "");
    let out = cluster
        .cli
        .run(&["deploy", dup.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("hello.test belongs to app hello"),
        "{out:?}"
    );
    let apps = cluster.cli.ok(&["apps", "--json"]).await.json();
    let names: Vec<&str> = apps
        .as_array()
        .expect("apps")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["hello"], "{apps}");
    let served = body(port).await.expect("hello still serves");
    assert!(served.starts_with("v1 "), "{served}");

    // Once hello lets it go, dup may have it.
    write_app(&hello, "v2", 200, "");
    let manifest = hello.join("Reef.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(
        &manifest,
        text.replace("[\"hello.test\"]", "[\"other.test\"]"),
    )
    .expect("manifest");
    cluster.deploy(&hello).await;
    cluster.deploy(&dup).await;
}
