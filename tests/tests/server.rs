//! A production cluster from empty machines: `reef server` on the first
//! (it creates the cluster, supervises its own nats-server and prints the
//! CLI's settings and a join token), `reef join` on the next (a network
//! namespace stands in for a second host), config files, and what a host
//! that is killed or stopped at any moment leaves behind: nothing.

use reef_tests::app::{process_in, write_app};
use reef_tests::dev::ReefDev;
use reef_tests::netns::Netns;
use reef_tests::process::live_pids_where;
use reef_tests::reef::reef_bin;
use reef_tests::wait::free_port;
use reef_tests::{eventually, http, Cli};
use std::path::Path;
use std::time::Duration;

/// Live processes whose arguments include `arg` (a config file's path).
fn running_with(arg: &Path) -> Vec<String> {
    let arg = arg.as_os_str().as_encoded_bytes().to_vec();
    live_pids_where(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|a| a == arg))
    })
}

/// The nats-server processes of the server whose data is in `data`.
fn nats_servers_of(data: &Path) -> Vec<String> {
    running_with(&data.join("nats/nats.conf"))
}

/// `reef server` with nothing on the well-known ports: HTTP on `http`.
fn server(data: &Path, nats: &str, host: &str, http: u16) -> ReefDev {
    ReefDev::server(
        &[
            "--name",
            "s1",
            "--nats-listen",
            nats,
            "--host",
            host,
            "--http",
            &format!("127.0.0.1:{http}"),
            "--https",
            "off",
            "--peer",
            "off",
            "--metrics",
            "off",
            "--acme",
            "off",
            "--stop-grace",
            "1s",
        ],
        data,
    )
}

/// What the server printed for the CLI: its NATS URL.
async fn cli_of(server: &mut ReefDev, data: &Path) -> Cli {
    let export = server.printed("export REEF_NATS_URL=").await;
    let url = export.split_whitespace().next().expect("a URL").to_string();
    assert!(
        export.contains(&format!(
            "REEF_CREDS={}",
            data.join("admin.creds").display()
        )),
        "{export}"
    );
    Cli::for_dev(&url, data)
}

/// `reef ARGS...` run inside `netns` (another host), its output in `log`.
fn in_netns(netns: &Netns, args: &[&str], log: &Path) -> ReefDev {
    let log = std::fs::File::create(log).expect("log");
    let mut command = tokio::process::Command::new("ip");
    command
        .args(["netns", "exec", &netns.name])
        .arg(reef_bin())
        .args(args)
        .env_remove("REEF_NATS_URL")
        .env_remove("REEF_CREDS")
        .env_remove("REEF_NATS_CA")
        .stderr(log);
    ReefDev::spawn(command)
}

/// `reef ARGS...` here, to completion.
async fn reef(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(reef_bin())
        .args(args)
        .env_remove("REEF_NATS_URL")
        .env_remove("REEF_CREDS")
        .env_remove("REEF_NATS_CA")
        .output()
        .await
        .expect("run reef")
}

/// The node named `name` once its state is `state`.
async fn node_in(cli: &Cli, name: &str, state: &str) -> serde_json::Value {
    eventually(
        &format!("{name} to be {state}"),
        Duration::from_secs(30),
        || async {
            let out = cli.run(&["nodes", "--json"]).await;
            if out.code != Some(0) {
                return None;
            }
            out.json()
                .as_array()?
                .iter()
                .find(|n| n["name"] == name && n["state"] == state)
                .cloned()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_creates_the_cluster_and_a_machine_on_another_host_joins_with_its_token() {
    let netns = Netns::create().expect("a network namespace (needs root and ip)");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let port = free_port();
    let mut server = server(
        &data,
        &format!("0.0.0.0:{port}"),
        &netns.host_ip,
        free_port(),
    );
    let cli = cli_of(&mut server, &data).await;
    // The URL the CLI and the token carry is the one other hosts reach.
    assert_eq!(cli.nats, format!("tls://{}:{port}", netns.host_ip));
    let token = server.printed("reef join --server ").await;
    node_in(&cli, "s1", "ready").await;

    // A malformed token: a clear error, and nothing written.
    let bad = dir.path().join("bad");
    let out = reef(&[
        "join",
        "--foreground",
        "--data-dir",
        bad.to_str().expect("path"),
        "--config",
        bad.join("agent.toml").to_str().expect("path"),
        "reef-join-1.garbage",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("not a join token"),
        "{stderr}"
    );
    assert!(!bad.exists(), "a refused join wrote {}", bad.display());

    // The next machine: one command, in another network namespace.
    let lent = dir.path().join("lent");
    let config = dir.path().join("lent.toml");
    let join = |token: &str, data: &Path, log: &str| {
        in_netns(
            &netns,
            &[
                "join",
                "--foreground",
                "--name",
                "lent",
                "--data-dir",
                data.to_str().expect("path"),
                "--config",
                config.to_str().expect("path"),
                "--http",
                "off",
                "--https",
                "off",
                "--peer",
                "off",
                "--metrics",
                "off",
                "--label",
                "where=lent",
                // `ip netns exec` mounts a sysfs of its own, without the
                // host's control groups.
                "--sandbox",
                "off",
                token,
            ],
            &dir.path().join(log),
        )
    };
    let mut joined = join(&token, &lent, "join.log");
    joined.printed("joined as lent").await;
    let node = node_in(&cli, "lent", "ready").await;
    let written = std::fs::read_to_string(&config).expect("the agent's config");
    assert!(written.contains("name = \"lent\""), "{written}");
    assert!(written.contains("label = [\"where=lent\"]"), "{written}");
    let run_there = || async {
        let out = cli
            .ok(&[
                "run",
                "--label",
                "where=lent",
                "--",
                "sh",
                "-c",
                "echo $REEF_NODE_ID",
            ])
            .await;
        out.stdout.trim().to_string()
    };
    assert_eq!(run_there().await, node["id"].as_str().expect("id"));

    // The token was single use: another machine cannot join with it.
    let other = dir.path().join("other");
    let out = tokio::process::Command::new("ip")
        .args(["netns", "exec", &netns.name])
        .arg(reef_bin())
        .args(["join", "--foreground", "--data-dir"])
        .arg(&other)
        .arg("--config")
        .arg(dir.path().join("other.toml"))
        .arg(&token)
        .output()
        .await
        .expect("reef join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("token"),
        "{stderr}"
    );
    assert!(!other.exists() && !dir.path().join("other.toml").exists());

    // Restarted as its unit does, from its config file: the same node, no token.
    joined.terminate().await;
    node_in(&cli, "lent", "down").await;
    let config_arg = config.to_str().expect("path").to_string();
    let agent = in_netns(
        &netns,
        &["agent", "--config", &config_arg],
        &dir.path().join("agent.log"),
    );
    let again = node_in(&cli, "lent", "ready").await;
    assert_eq!(again["id"], node["id"]);
    assert_eq!(run_there().await, node["id"].as_str().expect("id"));

    // A data dir of this node, offered a token of another cluster: refused.
    let elsewhere = dir.path().join("elsewhere");
    let mut other_server = ReefDev::server(
        &[
            "--name",
            "t1",
            "--cluster-name",
            "other",
            "--nats-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--http",
            "off",
            "--https",
            "off",
            "--peer",
            "off",
            "--metrics",
            "off",
            "--acme",
            "off",
        ],
        &elsewhere,
    );
    let foreign = other_server.printed("reef join --server ").await;
    let out = reef(&[
        "join",
        "--foreground",
        "--data-dir",
        lent.to_str().expect("path"),
        "--config",
        dir.path().join("foreign.toml").to_str().expect("path"),
        &foreign,
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("holds a node of another cluster"),
        "{stderr}"
    );
    assert!(!dir.path().join("foreign.toml").exists());
    other_server.terminate().await;

    agent.terminate().await;
    let nats = nats_servers_of(&data);
    assert_eq!(nats.len(), 1, "one nats-server runs: {nats:?}");
    server.terminate().await;
    assert!(
        nats_servers_of(&data).is_empty(),
        "reef server stopped its nats-server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarts_its_nats_server_and_a_killed_host_comes_back_with_its_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let nats = format!("127.0.0.1:{}", free_port());
    let http = free_port();
    let mut first = server(&data, &nats, "127.0.0.1", http);
    let cli = cli_of(&mut first, &data).await;
    node_in(&cli, "s1", "ready").await;
    let hello = dir.path().join("hello");
    write_app(&hello, "v1", 200, "");
    cli.ok(&["deploy", hello.to_str().expect("path")]).await;
    let body = || async {
        http::get(http, "hello.test", "/")
            .await
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.body)
    };
    let before = eventually("hello to serve", Duration::from_secs(30), body).await;

    // nats-server dies: reef server starts it again, and the cluster works.
    let old = nats_servers_of(&data);
    assert_eq!(old.len(), 1, "{old:?}");
    let pid = nix::unistd::Pid::from_raw(old[0].parse().expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill nats-server");
    let restarted = eventually("a new nats-server", Duration::from_secs(20), || async {
        let now = nats_servers_of(&data);
        (now.len() == 1 && now != old).then_some(now)
    })
    .await;
    eventually("a job to run again", Duration::from_secs(30), || async {
        let out = cli.run(&["run", "--", "echo", "back"]).await;
        (out.code == Some(0) && out.stdout.trim() == "back").then_some(())
    })
    .await;

    // The host dies outright: reef server, killed, stops nothing; its
    // nats-server and the app live on until the server starts again.
    first.kill().await;
    assert_eq!(nats_servers_of(&data), restarted);
    let mut second = server(&data, &nats, "127.0.0.1", http);
    // Not a new cluster: no new token.
    second
        .printed("To add a machine: `reef token create [--server]` here")
        .await;
    let after = eventually(
        "hello to serve from a new instance",
        Duration::from_secs(40),
        || async {
            let body = body().await?;
            (process_in(&body) != process_in(&before)).then_some(body)
        },
    )
    .await;
    assert!(after.starts_with("v1 "), "{after}");
    let now = nats_servers_of(&data);
    assert_eq!(
        now.len(),
        1,
        "the leftover nats-server was stopped: {now:?}"
    );
    assert_ne!(now, restarted);
    let status = cli.ok(&["status", "hello", "--json"]).await.json();
    let live: Vec<_> = status["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i["state"] == "healthy")
        .collect();
    assert_eq!(live.len(), 1, "{status}");
    second.terminate().await;
    assert!(nats_servers_of(&data).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_while_its_nats_server_starts_leaves_nothing_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A nats-server that never listens: the server waits for it.
    let fake = dir.path().join("nats-server");
    let pid_file = dir.path().join("fake.pid");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 300\n",
            pid_file.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let data = dir.path().join("server");
    let mut command = tokio::process::Command::new(reef_bin());
    command
        .args(["server", "--data-dir"])
        .arg(&data)
        .args(["--nats-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--http", "off", "--https", "off", "--peer", "off"])
        .args(["--metrics", "off", "--acme", "off"])
        .env("REEF_NATS_SERVER", &fake)
        .stderr(std::process::Stdio::null());
    let server = ReefDev::spawn(command);
    let pid = eventually(
        "the fake nats-server to start",
        Duration::from_secs(30),
        || async {
            let text = std::fs::read_to_string(&pid_file).ok()?;
            let pid = text.trim().to_string();
            (!pid.is_empty() && reef_tests::process::is_alive(&pid)).then_some(pid)
        },
    )
    .await;
    server.terminate().await;
    assert!(
        !reef_tests::process::is_alive(&pid),
        "the nats-server it was waiting for is still running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_sets_flags_and_an_unknown_field_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nnats_listn = \"127.0.0.1:4222\"\n",
            data.display()
        ),
    )
    .expect("write");
    let out = reef(&["server", "--config", config.to_str().expect("path")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `nats_listn`"), "{stderr}");
    assert!(stderr.contains("nats_listen"), "{stderr}");
    assert!(
        !data.exists(),
        "a refused config created {}",
        data.display()
    );

    // A value the flag refuses names the field, for the agent's file too.
    let agent = dir.path().join("agent.toml");
    std::fs::write(&agent, "name = \"a\"\nmax_pids = 1\n").expect("write");
    let out = reef(&["agent", "--config", agent.to_str().expect("path")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("field `max_pids`"), "{stderr}");

    // A good file runs the server: the file's name and listen address hold.
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\nname = \"from-file\"\nnats_listen = \"127.0.0.1:{port}\"\n\
             http = \"off\"\nhttps = \"off\"\npeer = \"off\"\nmetrics = \"off\"\nacme = \"off\"\n",
            data.display()
        ),
    )
    .expect("write");
    let mut command = tokio::process::Command::new(reef_bin());
    command
        .args(["server", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::null());
    let mut server = ReefDev::spawn(command);
    let cli = cli_of(&mut server, &data).await;
    assert_eq!(cli.nats, format!("tls://127.0.0.1:{port}"));
    node_in(&cli, "from-file", "ready").await;
    assert!(server.exited().is_none());
    server.terminate().await;
}
