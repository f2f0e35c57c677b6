//! Joining with a token: `reef token create` prints a single-use, expiring
//! token; `reef agent --join TOKEN` makes its own key on first start, gets
//! its credential (trust class and labels from the token) and reuses it on
//! later starts. The coordinators store only its public key.

use reef_tests::reef::reef_bin;
use reef_tests::TestCluster;
use std::path::Path;
use std::time::Duration;

/// `reef agent --join TOKEN` with no proxy, logging to `log`.
fn joining_agent(token: Option<&str>, dir: &Path, name: &str, log: &Path) -> tokio::process::Child {
    let log = std::fs::File::create(log).expect("log");
    let mut command = tokio::process::Command::new(reef_bin());
    command
        .args(["agent", "--name", name, "--data-dir"])
        .arg(dir)
        .args([
            "--http",
            "off",
            "--https",
            "off",
            "--metrics",
            "off",
            "--stop-grace",
            "1s",
        ])
        .env_remove("REEF_CREDS")
        .env_remove("REEF_NATS_CA")
        .env_remove("REEF_NATS_URL")
        .env("NO_COLOR", "1")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true);
    if let Some(token) = token {
        command.args(["--join", token]);
    }
    command.spawn().expect("start reef agent")
}

async fn token(cluster: &TestCluster, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let out = cluster.cli.ok(&all).await;
    assert!(out.stderr.contains("single use"), "{out:?}");
    out.stdout.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_token_enrolls_a_node_once_with_its_trust_class_and_labels() {
    let cluster = TestCluster::start(1).await;
    let token = token(
        &cluster,
        &[
            "--trust",
            "contributed",
            "--label",
            "gpu=yes",
            "--ttl",
            "10m",
        ],
    )
    .await;
    let dir = cluster.dir.path().join("lent");
    let log = cluster.dir.path().join("lent.log");
    // The token, not the agent, decides what the node is.
    let mut agent = joining_agent(Some(&token), &dir, "lent", &log);
    let nodes = cluster.cli.wait_for_nodes(2).await;
    let lent = nodes
        .iter()
        .find(|n| n["name"] == "lent")
        .unwrap_or_else(|| {
            panic!(
                "{nodes:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    assert_eq!(lent["trust"], "contributed", "{lent}");
    assert_eq!(lent["labels"]["gpu"], "yes", "{lent}");

    // Its credential is its own, in its data dir, readable by it alone.
    use std::os::unix::fs::PermissionsExt as _;
    let creds = dir.join("node.creds");
    let mode = std::fs::metadata(&creds)
        .expect("node.creds")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&creds).expect("creds");
    let seed = reef_trust::creds::parse(&text)
        .expect("creds")
        .seed
        .to_string();
    // No seed of the node, nor the token's, is anywhere in NATS.
    reef_tests::leaks::assert_nowhere_in_nats(
        &cluster.nats.url,
        seed.as_bytes(),
        "the node's seed",
    )
    .await;
    let token_seed = {
        use base64::Engine as _;
        let body = token.strip_prefix("reef-join-1.").expect("prefix");
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .expect("base64");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        let creds = value["creds"].as_str().expect("creds");
        reef_trust::creds::parse(creds)
            .expect("creds")
            .seed
            .to_string()
    };
    reef_tests::leaks::assert_nowhere_in_nats(
        &cluster.nats.url,
        token_seed.as_bytes(),
        "the token's seed",
    )
    .await;

    // A job runs there.
    let out = cluster
        .cli
        .run(&[
            "run",
            "--trust",
            "contributed",
            "--",
            "echo",
            "on a lent machine",
        ])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "on a lent machine\n");

    // The token works once.
    let said = refused(&cluster, Some(&token), "other").await;
    assert!(
        said.contains("already used")
            || said.contains("refused the credential")
            || said.contains("expired or been used"),
        "{said}"
    );

    // A restart needs no token: it reuses its credential and its id.
    let id = lent["id"].clone();
    agent.kill().await.expect("kill");
    let _again = joining_agent(None, &dir, "lent", &log);
    reef_tests::eventually(
        "the node to come back with its id",
        Duration::from_secs(30),
        || async {
            let nodes = cluster.cli.nodes().await;
            nodes
                .iter()
                .any(|n| n["id"] == id && n["state"] == "ready" && n["name"] == "lent")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_malformed_tokens_are_refused_with_a_clear_error() {
    let cluster = TestCluster::start(1).await;
    let started = reef_proto::now_ms();
    let token = token(&cluster, &["--ttl", "1s"]).await;
    // Wait until the token's second has passed.
    reef_tests::eventually("the token to expire", Duration::from_secs(10), || async {
        (reef_proto::now_ms() > started + 2_500).then_some(())
    })
    .await;
    let said = refused(&cluster, Some(&token), "late").await;
    assert!(said.contains("expired"), "{said}");

    for bad in ["garbage", "reef-join-1.!!!", "reef-join-1.e30"] {
        let said = refused(&cluster, Some(bad), "bad").await;
        assert!(said.contains("not a join token"), "{bad}: {said}");
    }

    // No token and no credential: says what to pass.
    let said = refused(&cluster, None, "none").await;
    assert!(said.contains("--join TOKEN"), "{said}");
}

/// Starts an agent named `name` that must fail to join; returns its log,
/// having checked it exited non-zero and wrote no credential.
async fn refused(cluster: &TestCluster, token: Option<&str>, name: &str) -> String {
    let dir = cluster.dir.path().join(name);
    let log = cluster.dir.path().join(format!("{name}.log"));
    let mut agent = joining_agent(token, &dir, name, &log);
    let status = tokio::time::timeout(Duration::from_secs(30), agent.wait())
        .await
        .expect("refused in time")
        .expect("wait");
    assert!(!status.success(), "{name} joined");
    assert!(!dir.join("node.creds").exists(), "nothing half-written");
    std::fs::read_to_string(&log).expect("log")
}

/// `reef join --server --foreground TOKEN` into `dir`; must fail within
/// 30 s. Returns what it said, having checked nothing was written.
async fn server_join_refused(token: &str, dir: &Path) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(reef_bin())
            .args(["join", "--server", "--foreground", "--name", "s9"])
            .arg("--data-dir")
            .arg(dir)
            .arg("--config")
            .arg(dir.with_extension("toml"))
            .args([
                "--nats-listen",
                "127.0.0.1:1",
                "--cluster-listen",
                "127.0.0.1:2",
            ])
            .arg(token)
            .env_remove("REEF_CREDS")
            .env_remove("REEF_NATS_CA")
            .env_remove("REEF_NATS_URL")
            .output(),
    )
    .await
    .expect("refused in time")
    .expect("reef join");
    assert!(!out.status.success(), "{out:?}");
    assert!(!dir.exists(), "a refused join wrote {}", dir.display());
    assert!(!dir.with_extension("toml").exists());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_server_token_joins_a_server_and_only_into_a_cluster_of_servers() {
    let cluster = TestCluster::start(1).await;
    // An agent's token: the NATS server refuses its credential's publish.
    let agent_token = token(&cluster, &[]).await;
    let said = server_join_refused(&agent_token, &cluster.dir.path().join("s-a")).await;
    assert!(said.contains("not a server token"), "{said}");
    // Unused: it still joins an agent.
    let dir = cluster.dir.path().join("agent-a");
    let _agent = joining_agent(
        Some(&agent_token),
        &dir,
        "agent-a",
        &cluster.dir.path().join("agent-a.log"),
    );
    reef_tests::eventually("the agent to join", Duration::from_secs(30), || async {
        dir.join("node.creds").exists().then_some(())
    })
    .await;

    // A server token, but this cluster's NATS is not run by `reef server`.
    let server_token = token(&cluster, &["--server"]).await;
    let said = server_join_refused(&server_token, &cluster.dir.path().join("s-b")).await;
    assert!(said.contains("no server is recorded"), "{said}");
    let out = cluster
        .cli
        .run(&["token", "create", "--server", "--trust", "contributed"])
        .await;
    assert_eq!(out.code, Some(2), "{out:?}");

    // A data dir that holds another cluster: refused, nothing changed.
    let other = cluster.dir.path().join("other-cluster");
    let made = tokio::process::Command::new(reef_bin())
        .args(["cluster", "init", "--dir"])
        .arg(&other)
        .output()
        .await
        .expect("reef cluster init");
    assert!(made.status.success(), "{made:?}");
    let before: Vec<_> = std::fs::read_dir(&other)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let out = tokio::process::Command::new(reef_bin())
        .args(["join", "--server", "--foreground", "--data-dir"])
        .arg(&other)
        .arg("--config")
        .arg(cluster.dir.path().join("other.toml"))
        .arg(&server_token)
        .env_remove("REEF_CREDS")
        .env_remove("REEF_NATS_CA")
        .env_remove("REEF_NATS_URL")
        .output()
        .await
        .expect("reef join");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("holds another cluster"),
        "{said}"
    );
    let after: Vec<_> = std::fs::read_dir(&other)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(before, after);
    assert!(!cluster.dir.path().join("other.toml").exists());
}
