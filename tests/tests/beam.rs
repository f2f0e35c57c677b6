//! Real Erlang/Elixir releases (`type = "beam"`): a `mix release` of a tiny
//! Elixir app and a `rebar3 release` of a tiny Erlang one at their default
//! settings, built in the test from Debian's `elixir`, `erlang` and
//! `rebar3` packages, deployed, replaced blue-green under load and
//! sequentially, run with distribution on, and destroyed without a process
//! left behind.

use reef_tests::beam_app::{write_beam_app, Tool};
use reef_tests::probe::Prober;
use reef_tests::process::{live_pids_where, pids_with_env};
use reef_tests::{eventually, http, TestCluster};
use std::time::Duration;

async fn get(port: u16, app: &str, path: &str) -> Option<String> {
    http::get(port, &format!("{app}.test"), path)
        .await
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

/// The first word of what the app answers (its `VERSION`).
async fn version(port: u16, app: &str) -> Option<String> {
    let body = get(port, app, "/").await?;
    body.split_whitespace().next().map(str::to_string)
}

/// The program names (`beam.smp`, `epmd`, ...) of the live processes of `app`.
fn app_processes(app: &str) -> Vec<String> {
    let mut names: Vec<String> = pids_with_env("REEF_APP", app)
        .iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .filter_map(|cmdline| {
            let program = cmdline.split(|b| *b == 0).next()?.to_vec();
            let program = String::from_utf8(program).ok()?;
            Some(program.rsplit('/').next()?.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The processes of the host whose command line names a path of the
/// releases of `app` unpacked under `dir`, whatever their environment.
fn release_processes(dir: &str, app: &str) -> Vec<String> {
    let releases = format!("/apps/{app}/releases/");
    let has = |c: &[u8], s: &str| c.windows(s.len()).any(|w| w == s.as_bytes());
    live_pids_where(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| has(&c, dir) && has(&c, &releases))
    })
}

/// Deploys `v2` over a running v1 while a client sends requests to `host`
/// through `port` the whole time: every request is answered, by v1 then
/// v2, and requests still flow after the switch.
async fn redeploy_under_load(cluster: &TestCluster, port: u16, host: &str, v2: &std::path::Path) {
    let prober = Prober::start(port, host);
    eventually("the client to see v1", Duration::from_secs(10), || async {
        (prober.ok() > 5).then_some(())
    })
    .await;
    deploy(cluster, v2).await;
    eventually("the client to see v2", Duration::from_secs(30), || async {
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
    assert_eq!(
        probed.failed,
        0,
        "no request failed: {probed:?}\n{}",
        cluster.logs()
    );
    assert_eq!(probed.seen, vec!["v1".to_string(), "v2".into()]);
}

async fn deploy(cluster: &TestCluster, dir: &std::path::Path) {
    let out = cluster
        .cli
        .run_with_timeout(
            &["deploy", dir.to_str().expect("path")],
            Duration::from_secs(90),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mix_release_deploys_and_is_replaced_blue_green_under_load_without_a_failed_request() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let v1 = cluster.dir.path().join("v1");
    tokio::task::spawn_blocking({
        let v1 = v1.clone();
        move || write_beam_app(&v1, Tool::Mix, "shop", "v1", "")
    })
    .await
    .expect("release");
    deploy(&cluster, &v1).await;
    let body = get(port, "shop", "/").await.expect("v1 answers");
    // Distribution is off unless asked for: no node name, no epmd.
    assert!(body.starts_with("v1 nonode@nohost 0.1.0"), "{body}");
    let tmp = get(port, "shop", "/env/RELEASE_TMP").await.expect("env");
    assert!(
        tmp.ends_with("/tmp") && tmp.contains("/instances/"),
        "{tmp}"
    );
    let processes = app_processes("shop");
    assert!(processes.iter().any(|p| p == "beam.smp"), "{processes:?}");
    assert!(!processes.iter().any(|p| p == "epmd"), "{processes:?}");

    // Blue-green with a client sending requests the whole time.
    let v2 = cluster.dir.path().join("v2");
    tokio::task::spawn_blocking({
        let v2 = v2.clone();
        move || write_beam_app(&v2, Tool::Mix, "shop", "v2", "")
    })
    .await
    .expect("release");
    redeploy_under_load(&cluster, port, "shop.test", &v2).await;
    cluster.healthy_nodes("shop", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mix_release_is_replaced_sequentially() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    for wanted in ["v1", "v2", "v3"] {
        let dir = cluster.dir.path().join(wanted);
        let v = wanted.to_string();
        tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || write_beam_app(&dir, Tool::Mix, "seq", &v, "strategy = \"sequential\"\n")
        })
        .await
        .expect("release");
        deploy(&cluster, &dir).await;
        let seen = eventually(
            &format!("{wanted} to answer"),
            Duration::from_secs(30),
            || async { version(port, "seq").await.filter(|v| v == wanted) },
        )
        .await;
        assert_eq!(seen, wanted);
        cluster.healthy_nodes("seq", 1).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_release_gets_a_node_and_epmd_per_instance_and_destroy_leaves_nothing() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let v1 = cluster.dir.path().join("v1");
    tokio::task::spawn_blocking({
        let v1 = v1.clone();
        move || write_beam_app(&v1, Tool::Mix, "chat", "v1", "distribution = true\n")
    })
    .await
    .expect("release");

    // The cookie is a secret: without it, nothing is deployed.
    let out = cluster
        .cli
        .run(&["deploy", v1.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("RELEASE_COOKIE"), "{out:?}");
    let cookie = "c00kie-7d1e";
    let out = cluster
        .cli
        .run_with_stdin(
            &["secrets", "set", "chat", "RELEASE_COOKIE", "--create"],
            cookie.as_bytes(),
        )
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    deploy(&cluster, &v1).await;
    let first = get(port, "chat", "/").await.expect("v1 answers");
    assert!(
        first.starts_with("v1 hello-"),
        "a node name of its own: {first}"
    );
    assert_eq!(
        get(port, "chat", "/env/RELEASE_COOKIE").await.as_deref(),
        Some(cookie)
    );
    let processes = app_processes("chat");
    for program in ["beam.smp", "epmd", "erl_child_setup"] {
        assert!(
            processes.iter().any(|p| p == program),
            "{program}: {processes:?}"
        );
    }

    // The redeploy that fails with a fixed node name ("the name ... seems
    // to be in use by another Erlang node") starts beside the old one.
    let v2 = cluster.dir.path().join("v2");
    tokio::task::spawn_blocking({
        let v2 = v2.clone();
        move || write_beam_app(&v2, Tool::Mix, "chat", "v2", "distribution = true\n")
    })
    .await
    .expect("release");
    deploy(&cluster, &v2).await;
    let second = eventually("v2 to answer", Duration::from_secs(30), || async {
        get(port, "chat", "/")
            .await
            .filter(|b| b.starts_with("v2 "))
    })
    .await;
    let node = |body: &str| body.split_whitespace().nth(1).map(str::to_string);
    assert_ne!(node(&first), node(&second), "{first} / {second}");
    cluster.healthy_nodes("chat", 1).await;
    // The old instance's epmd went with it: one left, the new one's.
    eventually("one epmd", Duration::from_secs(20), || async {
        let epmds = pids_with_env("REEF_APP", "chat")
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    c.split(|b| *b == 0)
                        .next()
                        .is_some_and(|p| p.ends_with(b"/epmd"))
                })
            })
            .count();
        (epmds == 1).then_some(())
    })
    .await;

    let dir = cluster.dir.path().display().to_string();
    assert!(!release_processes(&dir, "chat").is_empty());
    assert!(!cluster.agents[0].app_pids().is_empty());
    let out = cluster
        .cli
        .run_with_timeout(&["destroy", "chat", "--yes"], Duration::from_secs(30))
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    eventually("no process of the app", Duration::from_secs(20), || async {
        let left = (
            app_processes("chat"),
            release_processes(&dir, "chat"),
            cluster.agents[0].app_pids(),
        );
        (left.0.is_empty() && left.1.is_empty() && left.2.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebar3_release_is_replaced_blue_green_under_load_and_destroy_leaves_nothing() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let write = |version: &'static str| {
        let dir = cluster.dir.path().join(version);
        async move {
            let at = dir.clone();
            tokio::task::spawn_blocking(move || {
                write_beam_app(&at, Tool::Rebar3, "erl", version, "")
            })
            .await
            .expect("release");
            dir
        }
    };
    let v1 = write("v1").await;
    deploy(&cluster, &v1).await;
    let body = get(port, "erl", "/").await.expect("v1 answers");
    // relx's vm.args names the node; each instance has an epmd of its own.
    assert!(
        body.starts_with("v1 hi@") && body.trim_end().ends_with(" relx"),
        "{body}"
    );
    let processes = app_processes("erl");
    // relx names the VM after the release (argv[0] "hi").
    for program in ["hi", "erl_child_setup", "epmd"] {
        assert!(
            processes.iter().any(|p| p == program),
            "{program}: {processes:?}"
        );
    }

    // The same node name twice at once, each on its own epmd.
    let v2 = write("v2").await;
    redeploy_under_load(&cluster, port, "erl.test", &v2).await;

    let dir = cluster.dir.path().display().to_string();
    let out = cluster
        .cli
        .run_with_timeout(&["destroy", "erl", "--yes"], Duration::from_secs(30))
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    eventually("no process of the app", Duration::from_secs(20), || async {
        let left = (
            app_processes("erl"),
            release_processes(&dir, "erl"),
            cluster.agents[0].app_pids(),
        );
        (left.0.is_empty() && left.1.is_empty() && left.2.is_empty()).then_some(())
    })
    .await;
}
