//! Managed Postgres end to end, with real PostgreSQL from Debian's
//! packages: an app with `[services.postgres]` and two replicas on two
//! nodes writes rows through `DATABASE_URL` from both; its Postgres runs on
//! one node, survives an agent restart and a redeploy with its data; a
//! destroy keeps the data and `--delete-data` removes it; bad input is
//! refused with nothing deployed.

use reef_tests::app::write_named_app;
use reef_tests::postgres::{installed_version, psql, query};
use reef_tests::{eventually, http, TestCluster};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The app `shop`: the test app, two replicas, whose `pre_start` writes a
/// row naming its node and release through `DATABASE_URL`.
fn write_shop(dir: &Path, version: u32, release: &str) {
    let migrate = format!(
        r#"set -e
for i in 1 2 3 4 5 6 7 8 9 10; do
  {psql} -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "CREATE TABLE IF NOT EXISTS visits (node text NOT NULL, release text NOT NULL)" && break
  sleep 0.3
done
{psql} -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "INSERT INTO visits VALUES ('$REEF_NODE_ID', '{release}')"
"#,
        psql = psql(version)
    );
    write_named_app(
        dir,
        "shop",
        &["shop.test"],
        "",
        &format!(
            "replicas = 2\npre_start = \"sh migrate.sh\"\n\n[services.postgres]\nversion = {version}\ndatabases = [\"shop\"]\n"
        ),
    );
    std::fs::write(dir.join("migrate.sh"), migrate).expect("write migrate.sh");
    // A change in the artifact, so the deploy is a new release.
    std::fs::write(dir.join("release.txt"), release).expect("write release");
}

async fn status(cluster: &TestCluster) -> serde_json::Value {
    cluster.cli.ok(&["status", "shop", "--json"]).await.json()
}

/// `DATABASE_URL` as the instance behind `port` sees it.
async fn database_url(port: u16) -> Option<String> {
    http::get(port, "shop.test", "/env/DATABASE_URL")
        .await
        .ok()
        .filter(|r| r.status == 200 && r.body.starts_with("postgres://"))
        .map(|r| r.body)
}

/// The pids of the postgres processes whose command line names `dir`.
fn pids_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                    let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                    (text.contains(&needle) && text.contains("/bin/postgres"))
                        .then(|| pid.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `sql` through `url` gives rows `want` accepts; on timeout,
/// fails with the last answer and every process's log.
async fn rows_until(
    cluster: &TestCluster,
    version: u32,
    url: &str,
    sql: &str,
    want: impl Fn(&str) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = query(version, url, sql).await;
        if rows.as_deref().is_some_and(&want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql} gave {rows:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The processes whose command line names `dir`.
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .filter_map(|e| {
                    let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                    let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                    text.contains(&needle).then_some(text)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn service_dir(cluster: &TestCluster, node: &str) -> PathBuf {
    cluster
        .agent(node)
        .data_dir()
        .expect("agent data dir")
        .join("services/shop.postgres")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_postgres_serves_both_nodes_and_keeps_its_data_across_restarts_and_deploys() {
    let version = installed_version();
    let mut cluster = TestCluster::start(2).await;
    let shop = cluster.dir.path().join("shop");
    write_shop(&shop, version, "1");
    cluster.deploy(&shop).await;
    let mut nodes = cluster.healthy_nodes("shop", 2).await;
    nodes.sort();
    assert_eq!(nodes, vec!["node-1", "node-2"], "one replica on each node");

    // The service: on one node, running (as its node reports), its
    // password nowhere in the status.
    let json = eventually(
        "the service reported running",
        Duration::from_secs(10),
        || async {
            let json = status(&cluster).await;
            (json["services"][0]["state"] == "running").then_some(json)
        },
    )
    .await;
    let service = &json["services"][0];
    assert_eq!(service["kind"], "postgres", "{json}");
    assert_eq!(service["version"], version, "{json}");
    assert_eq!(service["databases"], serde_json::json!(["shop"]), "{json}");
    assert_eq!(service["state"], "running", "{json}");
    let home = service["node_name"]
        .as_str()
        .expect("node name")
        .to_string();
    let port = cluster.proxy_port("node-1");
    let url = eventually(
        "the instance's DATABASE_URL",
        Duration::from_secs(10),
        || database_url(port),
    )
    .await;
    // The instance on the service's node reaches it on loopback, the other
    // through its node's forwarder (a tunnel over the peer link): another port.
    let other = eventually(
        "the other instance's DATABASE_URL",
        Duration::from_secs(10),
        || database_url(cluster.proxy_port("node-2")),
    )
    .await;
    let service_port = format!(":{}/", json["services"][0]["port"]);
    let direct: Vec<&String> = [&url, &other]
        .into_iter()
        .filter(|u| u.contains(&service_port))
        .collect();
    assert_eq!(direct.len(), 1, "{url} {other} {service_port}");
    assert_ne!(url, other, "one of them goes through a forwarder");
    let password = url
        .trim_start_matches("postgres://shop:")
        .split('@')
        .next()
        .expect("a password")
        .to_string();
    assert!(password.len() >= 32, "{url}");
    let plain = cluster.cli.ok(&["status", "shop"]).await.stdout;
    assert!(
        plain.contains(&format!("postgres {version} on node {home}")),
        "{plain}"
    );
    for text in [json.to_string(), plain, cluster.logs()] {
        assert!(!text.contains(&password), "the password leaked: {text}");
    }

    // Both replicas wrote through DATABASE_URL, each from its own node.
    let nodes_that_wrote = "SELECT count(DISTINCT node) FROM visits WHERE release = '1'";
    eventually("rows from both nodes", Duration::from_secs(20), || async {
        (query(version, &url, nodes_that_wrote).await.as_deref() == Some("2")).then_some(())
    })
    .await;
    // Without the password, nobody gets in.
    let wrong = url.replace(&password, "not-the-password");
    assert_eq!(query(version, &wrong, "SELECT 1").await, None);

    // An agent restart on the service's node: Postgres stops cleanly with
    // the agent (nothing left running) and comes back with its data.
    let dir = service_dir(&cluster, &home);
    assert!(
        processes_under(&dir)
            .iter()
            .any(|p| p.contains("/bin/postgres")),
        "Postgres runs from {}",
        dir.display()
    );
    // Never as root (PostgreSQL would refuse): as the service's own uid.
    for pid in pids_under(&dir) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("0");
        assert_ne!(uid, "0", "pid {pid} runs as root");
    }
    let at = cluster
        .agents
        .iter()
        .position(|a| a.data_dir().is_some_and(|d| d.ends_with(&home)))
        .expect("the service's agent");
    assert!(
        cluster.agents[at].terminate().await,
        "the agent stopped cleanly"
    );
    assert!(
        processes_under(&dir).is_empty(),
        "left running: {:?}",
        processes_under(&dir)
    );
    // While its node is away the service waits for it, and says so.
    eventually("the service waiting", Duration::from_secs(15), || async {
        let state = status(&cluster).await["services"][0]["state"].clone();
        state
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("waiting: node {home} is down")))
            .then_some(())
    })
    .await;
    cluster.agents[at].restart();
    cluster.healthy_nodes("shop", 2).await;
    let rows = eventually(
        "Postgres back after the restart",
        Duration::from_secs(40),
        || async { query(version, &url, nodes_that_wrote).await },
    )
    .await;
    assert_eq!(rows, "2", "the rows are still there");
    assert_eq!(
        status(&cluster).await["services"][0]["node_name"],
        home.as_str()
    );

    // A redeploy: a new release writes too, and the earlier rows stay.
    write_shop(&shop, version, "2");
    cluster.deploy(&shop).await;
    cluster.healthy_nodes("shop", 2).await;
    // (After the restart both replicas may run on one node: the stopped
    // agent's replica moved, as a lost node's do.)
    let per_release = "SELECT (SELECT count(DISTINCT node) FROM visits WHERE release = '1') \
                       || ',' || (SELECT count(*) FROM visits WHERE release = '2')";
    rows_until(&cluster, version, &url, per_release, |rows| {
        let (first, second) = rows.split_once(',').unwrap_or_default();
        first == "2" && second.parse::<u32>().is_ok_and(|n| n >= 2)
    })
    .await;
    assert_eq!(
        status(&cluster).await["services"][0]["node_name"],
        home.as_str()
    );

    // Destroyed: the data stays on its node, and nothing runs.
    let out = cluster.cli.ok(&["destroy", "shop", "--yes"]).await;
    assert!(out.stderr.contains("kept"), "{out:?}");
    eventually("Postgres stopped", Duration::from_secs(30), || async {
        processes_under(&dir).is_empty().then_some(())
    })
    .await;
    assert!(dir.join("data/PG_VERSION").is_file(), "the data is kept");

    // --delete-data removes it.
    cluster
        .cli
        .ok(&["destroy", "shop", "--delete-data", "--yes"])
        .await;
    eventually("the data deleted", Duration::from_secs(30), || async {
        (!dir.exists()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_services_are_refused_by_name_and_nothing_is_deployed() {
    let version = installed_version();
    let cluster = TestCluster::start(1).await;
    let shop = cluster.dir.path().join("shop");
    let missing =
        (13..=17).find(|v| !Path::new(&format!("/usr/lib/postgresql/{v}/bin/postgres")).exists());
    let mut cases = vec![
        (
            "[services.redis]\nversion = 7\n".to_string(),
            "services.redis: unknown service kind \"redis\"".to_string(),
        ),
        (
            "[services.postgres]\nversion = 9\ndatabases = [\"shop\"]\n".to_string(),
            "services.postgres.version: unsupported version 9".to_string(),
        ),
        (
            format!("[services.postgres]\nversion = {version}\ndatabases = [\"Shop-DB\"]\n"),
            "services.postgres.databases[0]: \"Shop-DB\" is not a valid database name".to_string(),
        ),
    ];
    if let Some(missing) = missing {
        cases.push((
            format!("[services.postgres]\nversion = {missing}\ndatabases = [\"shop\"]\n"),
            format!("cannot place postgres {missing} for shop"),
        ));
    }
    for (table, expected) in cases {
        write_named_app(&shop, "shop", &["shop.test"], "", &format!("\n{table}"));
        let out = cluster
            .cli
            .run(&["deploy", shop.to_str().expect("path")])
            .await;
        assert_ne!(out.code, Some(0), "{table}: {out:?}");
        assert!(out.stderr.contains(&expected), "{expected:?} in {out:?}");
        let status = cluster.cli.run(&["status", "shop"]).await;
        assert_ne!(status.code, Some(0), "nothing deployed: {status:?}");
    }
}
