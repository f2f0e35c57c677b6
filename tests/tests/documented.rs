//! What the docs say, checked against what the binary does: the JSON
//! shapes of docs/cli.md, the environment jobs and apps get, the exit codes,
//! the README's word on placement, and the replica count a deploy keeps.

use reef_tests::app::write_app;
use reef_tests::{eventually, TestCluster};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The keys of a JSON object that docs/cli.md does not name.
fn undocumented(value: &serde_json::Value, cli_md: &str) -> Vec<String> {
    value
        .as_object()
        .map(|object| {
            object
                .keys()
                .filter(|key| {
                    !cli_md.contains(&format!("`{key}`")) && !cli_md.contains(&format!("\"{key}\""))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The keys of every object in `value`, nested included.
fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_shapes_are_the_documented_ones() {
    let cluster = TestCluster::start(1).await;
    let cli_md = doc("docs/cli.md");
    cluster.cli.ok(&["run", "--", "true"]).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "");
    cluster.deploy(&app).await;
    let set = cluster
        .cli
        .run_with_stdin(&["secrets", "set", "hello", "K"], b"v")
        .await;
    assert_eq!(set.code, Some(0), "{set:?}");

    let jobs = cluster.cli.ok(&["jobs", "--json"]).await.json();
    let job = &jobs[0];
    let id = job["id"].as_str().expect("an id");
    let status = cluster
        .cli
        .ok(&["job", "status", id, "--json"])
        .await
        .json();
    let nodes = cluster.cli.ok(&["nodes", "--json"]).await.json();
    let apps = cluster.cli.ok(&["apps", "--json"]).await.json();
    let app_status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    let releases = cluster
        .cli
        .ok(&["releases", "hello", "--json"])
        .await
        .json();
    let secrets = cluster
        .cli
        .ok(&["secrets", "list", "hello", "--json"])
        .await
        .json();
    cluster
        .cli
        .ok(&[
            "cron",
            "add",
            "tick",
            "--schedule",
            "* * * * * *",
            "--",
            "true",
        ])
        .await;
    let runs = eventually("a periodic job's run", Duration::from_secs(20), || async {
        let runs = cluster
            .cli
            .ok(&["cron", "history", "tick", "--json"])
            .await
            .json();
        runs.as_array()
            .is_some_and(|r| !r.is_empty())
            .then_some(runs)
    })
    .await;
    let crons = cluster.cli.ok(&["cron", "list", "--json"]).await.json();
    cluster
        .cli
        .ok(&[
            "notify",
            "add",
            "ops",
            "http://127.0.0.1:9/",
            "--events",
            "node.down",
        ])
        .await;
    let hooks = cluster.cli.ok(&["notify", "list", "--json"]).await.json();
    let event: serde_json::Value =
        eventually("the deploy's event", Duration::from_secs(10), || async {
            let out = cluster
                .cli
                .ok(&["events", "--json", "--kind", "deploy.started"])
                .await;
            out.stdout
                .lines()
                .next()
                .and_then(|l| serde_json::from_str(l).ok())
        })
        .await;
    let (audit, deployed) = eventually(
        "the deploy in the audit log",
        Duration::from_secs(10),
        || async {
            let audit = cluster.cli.ok(&["audit", "--json"]).await.json();
            let deployed = audit["entries"]
                .as_array()
                .and_then(|e| e.iter().find(|e| e["verb"] == "app.deploy"))
                .cloned()?;
            Some((audit, deployed))
        },
    )
    .await;

    let mut missing = Vec::new();
    for (what, value) in [
        ("jobs --json", job),
        ("job status --json", &status),
        ("nodes --json", &nodes[0]),
        ("apps --json", &apps[0]),
        ("status --json", &app_status),
        ("status --json instances", &app_status["instances"][0]),
        ("releases --json", &releases[0]),
        ("cron list --json", &crons[0]),
        ("cron list --json last", &crons[0]["last"]),
        ("cron history --json", &runs[0]),
        ("audit --json", &audit),
        ("events --json", &event),
        ("notify list --json", &hooks[0]),
        ("audit --json entries", &deployed),
    ] {
        for key in undocumented(value, &cli_md) {
            missing.push(format!("{what}: {key}"));
        }
    }
    assert!(missing.is_empty(), "undocumented: {missing:?}");

    // `reef apps --json` and `reef status --json` share their shape.
    assert_eq!(keys(&apps[0]), keys(&app_status));
    let (listed, shown) = (&apps[0]["instances"][0], &app_status["instances"][0]);
    assert_eq!(keys(listed), keys(shown));
    assert_eq!(listed["node_name"], "node-1", "{listed}");
    assert_eq!(shown["node_name"], "node-1", "{shown}");
    assert!(
        nodes[0]["gpus"].is_array() && nodes[0]["http"].is_string(),
        "{}",
        nodes[0]
    );
    assert_eq!(releases[0]["state"], "current");
    assert_eq!(secrets, serde_json::json!(["K"]));
}

/// The `REEF_*` variables docs/cli.md names in the sentence that starts
/// with `starts`.
fn documented_variables(cli_md: &str, starts: &str) -> BTreeSet<String> {
    let text = cli_md.replace('\n', " ");
    let at = text.find(starts).expect("the environment's section");
    let sentence = &text[at..];
    let sentence = &sentence[..sentence.find(". ").unwrap_or(sentence.len())];
    sentence
        .split('`')
        .filter(|word| word.starts_with("REEF_"))
        .map(str::to_string)
        .collect()
}

fn reef_variables(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter_map(|line| line.split('=').next())
        .filter(|name| name.starts_with("REEF_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_apps_get_the_documented_environment() {
    let cluster = TestCluster::start(1).await;
    let cli_md = doc("docs/cli.md");
    let out = cluster.cli.ok(&["run", "--", "env"]).await;
    assert_eq!(
        reef_variables(&out.stdout),
        documented_variables(&cli_md, "A job gets"),
        "{}",
        out.stdout
    );

    // An app that answers with its environment.
    let app = cluster.dir.path().join("env-app");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::write(
        app.join("server.py"),
        r#"import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = "\n".join("%s=%s" % kv for kv in sorted(os.environ.items())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#,
    )
    .expect("write");
    std::fs::write(
        app.join("Reef.toml"),
        "[app]\nname = \"env\"\ndomains = [\"env.test\"]\n\n[deploy]\ncommand = [\"python3\", \"server.py\"]\nhealth = \"/\"\nhealth_interval = \"50ms\"\n",
    )
    .expect("write");
    cluster.deploy(&app).await;
    let port = cluster.agents[0].http_port.expect("http port");
    let listing = eventually("the app's environment", Duration::from_secs(30), || async {
        reef_tests::http::get(port, "env.test", "/")
            .await
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.body)
    })
    .await;
    assert_eq!(
        reef_variables(&listing),
        documented_variables(&cli_md, "An app instance gets"),
        "{listing}"
    );
    for name in ["PORT", "HOME", "LANG", "PATH"] {
        assert!(
            listing.contains(&format!("\n{name}=")) || listing.starts_with(&format!("{name}=")),
            "{name}: {listing}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_are_the_documented_ones() {
    let cluster = TestCluster::start(1).await;
    let cli_md = doc("docs/cli.md");
    for code in ["124", "125", "130", "| 3 |", "| 2 |"] {
        assert!(cli_md.contains(code), "docs/cli.md has no exit code {code}");
    }
    // The job's own code, even 2.
    let out = cluster.cli.run(&["run", "--", "sh", "-c", "exit 2"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    // reef run's own usage error: not 2, which a job may exit with.
    let out = cluster
        .cli
        .run(&["run", "--no-such-flag", "--", "true"])
        .await;
    assert_eq!(out.code, Some(125), "{out:?}");
    // A job that ends without an exit code of its own.
    let out = cluster
        .cli
        .run(&["run", "--timeout", "300ms", "--", "sleep", "30"])
        .await;
    assert_eq!(out.code, Some(124), "{out:?}");
    // Other commands' usage errors.
    let out = cluster.cli.run(&["jobs", "--no-such-flag"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_bin_pack_replicas_spread_as_the_readme_says() {
    let readme = doc("README.md");
    assert!(
        readme.contains("Jobs bin-pack"),
        "the README says how jobs are placed"
    );
    assert!(readme.contains("replicas spread"), "and how replicas are");
    let cluster = TestCluster::start(2).await;
    let mut on = BTreeSet::new();
    for _ in 0..4 {
        let id = cluster.cli.submit(&["sleep", "20"]).await;
        let job = eventually("the job placed", Duration::from_secs(30), || async {
            let job = cluster.cli.job(&id).await;
            job["node_name"].as_str().map(str::to_string)
        })
        .await;
        on.insert(job);
    }
    assert_eq!(on.len(), 1, "four small jobs on one node: {on:?}");
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "replicas = 2\n");
    cluster.deploy(&app).await;
    let mut nodes = cluster.healthy_nodes("hello", 2).await;
    nodes.sort();
    assert_eq!(nodes, ["node-1", "node-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaled_count_survives_deploys_until_the_manifest_changes_its_own() {
    let cluster = TestCluster::start(2).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "replicas = 1\n");
    cluster.deploy(&app).await;
    cluster.cli.ok(&["scale", "hello", "3"]).await;
    cluster.healthy_nodes("hello", 3).await;
    // The same manifest: the scaled count stays.
    write_app(&app, "v2", 200, "replicas = 1\n");
    cluster.deploy(&app).await;
    cluster.healthy_nodes("hello", 3).await;
    let status = cluster.cli.ok(&["status", "hello", "--json"]).await.json();
    assert_eq!(status["replicas"], 3, "{status}");
    // So does a rollback to a release with the same manifest count.
    cluster.cli.ok(&["rollback", "hello"]).await;
    cluster.healthy_nodes("hello", 3).await;
    // A rollback to the current release is refused.
    let current =
        cluster.cli.ok(&["status", "hello", "--json"]).await.json()["release"].to_string();
    let out = cluster
        .cli
        .run(&["rollback", "hello", "--to", &current])
        .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("already the current release"),
        "{out:?}"
    );
    // The manifest asks for another count: it wins.
    write_app(&app, "v3", 200, "replicas = 2\n");
    cluster.deploy(&app).await;
    cluster.healthy_nodes("hello", 2).await;
    let releases = cluster
        .cli
        .ok(&["releases", "hello", "--json"])
        .await
        .json();
    let copied = releases
        .as_array()
        .expect("releases")
        .iter()
        .find(|r| r["copied_from"].is_number())
        .cloned()
        .expect("the rollback's release");
    assert_eq!(copied["copied_from"], 1, "{copied}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_replaced_by_a_newer_one_says_so_and_exits_3() {
    let cluster = TestCluster::start(1).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "");
    cluster.deploy(&app).await;
    // Release 2 takes seconds to start: release 3 comes meanwhile.
    let slow = cluster.dir.path().join("slow");
    write_app(&slow, "v2", 200, "");
    let server = std::fs::read_to_string(slow.join("server.py")).expect("server");
    std::fs::write(
        slow.join("server.py"),
        format!("import time\ntime.sleep(5)\n{server}"),
    )
    .expect("write");
    let first = tokio::spawn({
        let cli = cluster.cli.clone();
        let slow = slow.clone();
        async move { cli.run(&["deploy", slow.to_str().expect("path")]).await }
    });
    eventually("release 2 to start", Duration::from_secs(30), || async {
        let status = cluster
            .cli
            .run(&["status", "hello", "--json"])
            .await
            .json_opt()?;
        (status["release"] == 2).then_some(())
    })
    .await;
    write_app(&app, "v3", 200, "");
    cluster.deploy(&app).await;
    let out = first.await.expect("the first deploy");
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr
            .contains("release 2 of hello was superseded by release 3"),
        "{out:?}"
    );
}
