//! From empty hosts to an app served over HTTPS, as the README's
//! production section tells it: network namespaces on one bridge stand in
//! for separate machines (each listens on 80, 443, 4222 and 6222 like a
//! real server), pebble for the ACME CA. Host 1 runs `reef server`, hosts 2
//! and 3 `reef join --server` with the token the previous one printed, a
//! fourth joins as a contributed machine. Then host 1 dies outright, and
//! later comes back by running its unit's command again.

use reef_acme::testing::{Pebble, PebbleOptions};
use reef_tests::app::write_app;
use reef_tests::dev::ReefDev;
use reef_tests::lan::{Host, Lan};
use reef_tests::reef::reef_bin;
use reef_tests::{eventually, Cli};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// `reef ARGS...` on `host`, its log in `log`; what it prints is read.
fn reef_on(host: &Host, args: &[&str], log: &Path) -> ReefDev {
    let log = std::fs::File::create(log).expect("log");
    let mut command = host.command(reef_bin());
    command
        .args(args)
        .env_remove("REEF_NATS_URL")
        .env_remove("REEF_CREDS")
        .env_remove("REEF_NATS_CA")
        .env("REEF_LOG", "info,async_nats=warn")
        .stderr(log);
    ReefDev::spawn(command)
}

/// The last lines of every log in `dir`, for a failure's message.
fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for name in [
        "h1.log",
        "h2.log",
        "h3.log",
        "h4.log",
        "h4-again.log",
        "h1-again.log",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        // The lines that say what happened, not the retries that follow.
        let tail: Vec<&str> = text
            .lines()
            .filter(|line| !line.contains("routes watch interrupted"))
            .rev()
            .take(60)
            .collect();
        out.push_str(&format!("--- {name} ---\n"));
        for line in tail.into_iter().rev() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// An HTTPS answer for `name` from `host`'s port 443.
async fn https_body(host: &Host, name: &str, roots: &str) -> Option<String> {
    let addr: SocketAddr = format!("{}:443", host.ip).parse().expect("addr");
    reef_tests::https::get_at(addr, name, "/", roots)
        .await
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_three_empty_servers_to_an_https_app_that_outlives_the_first_server() {
    let lan = Lan::create(4).expect("a LAN of network namespaces (needs root, ip and nsenter)");
    let mut dir = tempfile::tempdir().expect("tempdir");
    // REEF_KEEP_TEST_DIR=1 keeps every host's data and log for a look after.
    if std::env::var_os("REEF_KEEP_TEST_DIR").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    let pebble = Pebble::start(PebbleOptions {
        listen: lan.gateway.parse().expect("ip"),
        resolve_to: lan.hosts[1].ip.parse().expect("ip"),
        ..PebbleOptions::new(80)
    })
    .await
    .expect("pebble starts");
    let acme_root = dir.path().join("pebble-listener-root.pem");
    std::fs::write(&acme_root, pebble.listener_root_pem()).expect("write");
    let issuing_root = pebble.issuing_root_pem().await.expect("pebble's root");
    let acme = [
        "--acme-directory",
        pebble.directory_url(),
        "--acme-ca-root",
        acme_root.to_str().expect("path"),
        "--acme-email",
        "ops@reef.test",
    ];
    // The commands a person types, in order.
    let mut typed: Vec<String> = Vec::new();

    // Host 1: its config file is what the install step leaves (with the
    // ACME settings filled in); the unit runs `reef server --config`.
    let config1 = dir.path().join("h1.toml");
    std::fs::write(
        &config1,
        format!(
            "data_dir = \"{}\"\nname = \"h1\"\nacme_directory = \"{}\"\nacme_ca_root = \"{}\"\n\
             acme_email = \"ops@reef.test\"\nstop_grace = \"1s\"\n",
            dir.path().join("h1").display(),
            pebble.directory_url(),
            acme_root.display()
        ),
    )
    .expect("write");
    let config1 = config1.to_str().expect("path").to_string();
    typed.push("reef server".into());
    let mut h1 = reef_on(
        &lan.hosts[0],
        &["server", "--config", &config1],
        &dir.path().join("h1.log"),
    );
    let printed =
        |said: Result<String, String>| said.unwrap_or_else(|e| panic!("{e}\n{}", logs(dir.path())));
    let token = printed(
        h1.try_printed("reef join --server ", Duration::from_secs(90))
            .await,
    );

    // Hosts 2 and 3: each joins with the token the one before printed.
    let join = |host: &Host, name: &str, token: &str| {
        let data = dir.path().join(name);
        let config = dir.path().join(format!("{name}.toml"));
        let mut args = vec![
            "join".to_string(),
            "--server".into(),
            "--foreground".into(),
            "--name".into(),
            name.into(),
            "--data-dir".into(),
            data.to_str().expect("path").into(),
            "--config".into(),
            config.to_str().expect("path").into(),
            "--stop-grace".into(),
            "1s".into(),
        ];
        args.extend(acme.iter().map(|a| a.to_string()));
        args.push(token.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        reef_on(host, &args, &dir.path().join(format!("{name}.log")))
    };
    typed.push("reef join --server".into());
    let mut h2 = join(&lan.hosts[1], "h2", &token);
    let token = printed(
        h2.try_printed("reef join --server ", Duration::from_secs(90))
            .await,
    );
    typed.push("reef join --server".into());
    let mut h3 = join(&lan.hosts[2], "h3", &token);
    let export = printed(
        h3.try_printed("export REEF_NATS_URL=", Duration::from_secs(180))
            .await,
    );
    typed.push("export REEF_NATS_URL=...".into());
    let urls = export.split_whitespace().next().expect("urls").to_string();
    for host in &lan.hosts[..3] {
        assert!(urls.contains(&host.ip), "{urls}");
    }
    let cli = Cli::for_dev(&urls, &dir.path().join("h3"));
    let nodes = eventually("three ready servers", Duration::from_secs(120), || async {
        let out = cli.run(&["nodes", "--json"]).await;
        let nodes = out.json_opt()?;
        let ready = nodes
            .as_array()?
            .iter()
            .filter(|n| n["state"] == "ready")
            .count();
        (ready == 3).then_some(nodes)
    })
    .await;
    let h1_node = nodes
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "h1")
        .expect("h1")["id"]
        .clone();

    // The app: two replicas, a domain, HTTPS from the CA.
    let app = dir.path().join("app");
    write_app(&app, "v1", 200, "replicas = 2\n");
    std::fs::write(
        app.join("Reef.toml"),
        std::fs::read_to_string(app.join("Reef.toml"))
            .expect("manifest")
            .replace("hello.test", "app.reef.test"),
    )
    .expect("manifest");
    typed.push("reef deploy".into());
    let out = cli.run(&["deploy", app.to_str().expect("path")]).await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", logs(dir.path()));
    for host in &lan.hosts[..3] {
        let body = eventually(
            &format!("HTTPS from {}", host.ip),
            Duration::from_secs(90),
            || https_body(host, "app.reef.test", &issuing_root),
        )
        .await;
        assert!(body.starts_with("v1 "), "{body}");
    }
    // Five commands from empty hosts to the HTTPS app (the README says so).
    assert_eq!(typed.len(), 5, "{typed:?}");

    // Every stream and bucket has three copies now.
    let replicas = eventually(
        "three copies of the state",
        Duration::from_secs(60),
        || async {
            let out = cli.run(&["servers", "--json"]).await;
            let servers = out.json_opt()?;
            let copies = servers["replicas"].as_u64()?;
            (copies == 3).then_some(servers)
        },
    )
    .await;
    assert_eq!(
        replicas["servers"].as_array().map(Vec::len),
        Some(3),
        "{replicas}"
    );

    // A contributed machine joins with a token of its own and gets batch
    // work. The token names the first server alone: the machine learns
    // the others from the cluster.
    let first_only = Cli {
        nats: format!("tls://{}:4222", lan.hosts[0].ip),
        ..cli.clone()
    };
    let contributed = first_only
        .ok(&["token", "create", "--trust", "contributed"])
        .await
        .stdout
        .trim()
        .to_string();
    let h4 = reef_on(
        &lan.hosts[3],
        &[
            "join",
            "--foreground",
            "--name",
            "lent",
            "--data-dir",
            dir.path().join("h4").to_str().expect("path"),
            "--config",
            dir.path().join("h4.toml").to_str().expect("path"),
            "--stop-grace",
            "1s",
            &contributed,
        ],
        &dir.path().join("h4.log"),
    );
    let ran_on = eventually(
        "a job on the contributed machine",
        Duration::from_secs(60),
        || async {
            let out = cli
                .run(&[
                    "run",
                    "--trust",
                    "contributed",
                    "--",
                    "sh",
                    "-c",
                    "echo $REEF_NODE_ID",
                ])
                .await;
            (out.code == Some(0)).then(|| out.stdout.trim().to_string())
        },
    )
    .await;
    let lent = cli.ok(&["nodes", "--json"]).await.json();
    let lent = lent
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == "lent")
        .cloned()
        .expect("the contributed node");
    assert_eq!(lent["id"], serde_json::Value::String(ran_on));
    assert_eq!(lent["trust"], "contributed");

    // Acknowledged just before the kill: a secret, and a finished job.
    let set = cli
        .run_with_stdin(&["secrets", "set", "hello", "LAST"], b"before-the-kill")
        .await;
    assert_eq!(set.code, Some(0), "{set:?}");
    let job = cli.ok(&["run", "--", "echo", "acknowledged"]).await;
    assert_eq!(job.stdout.trim(), "acknowledged");

    // Host 1 dies outright: its nats-server, coordinator, agent and app.
    assert!(lan.hosts[0].kill_all() > 0);
    // The app keeps serving through the others, over HTTPS.
    for host in &lan.hosts[1..3] {
        eventually(
            &format!("HTTPS from {} after the kill", host.ip),
            Duration::from_secs(30),
            || https_body(host, "app.reef.test", &issuing_root),
        )
        .await;
    }
    // The API answers, nothing acknowledged is lost, and new work runs.
    let secrets = eventually(
        "the API after the kill",
        Duration::from_secs(30),
        || async {
            let out = cli.run(&["secrets", "list", "hello"]).await;
            (out.code == Some(0)).then_some(out.stdout)
        },
    )
    .await;
    assert!(secrets.contains("LAST"), "{secrets}");
    // Each stream elects its leader among the servers left on its own, so
    // the jobs bucket may answer a moment after the secrets did.
    let jobs = eventually(
        "the jobs after the kill",
        Duration::from_secs(30),
        || async {
            let out = cli.run(&["jobs", "--json"]).await;
            (out.code == Some(0)).then_some(out.stdout)
        },
    )
    .await;
    assert!(jobs.contains("acknowledged"), "{jobs}");
    let after = eventually("a job after the kill", Duration::from_secs(30), || async {
        let out = cli.run(&["run", "--", "echo", "after"]).await;
        (out.code == Some(0)).then_some(out.stdout)
    })
    .await;
    assert_eq!(after.trim(), "after");
    // The contributed machine restarts while the server it joined through
    // is gone: it finds the others, and takes work again.
    h4.terminate().await;
    let h4_config = dir.path().join("h4.toml");
    let _h4 = reef_on(
        &lan.hosts[3],
        &["agent", "--config", h4_config.to_str().expect("path")],
        &dir.path().join("h4-again.log"),
    );
    eventually(
        "a job on the restarted contributed machine",
        Duration::from_secs(60),
        || async {
            let out = cli
                .run(&["run", "--trust", "contributed", "--", "echo", "again"])
                .await;
            (out.code == Some(0) && out.stdout.trim() == "again").then_some(())
        },
    )
    .await;
    // Its replica is replaced on the servers that are left.
    eventually(
        "two healthy replicas again",
        Duration::from_secs(60),
        || async {
            let status = cli.run(&["status", "hello", "--json"]).await.json_opt()?;
            let healthy: Vec<_> = status["instances"]
                .as_array()?
                .iter()
                .filter(|i| i["state"] == "healthy" && i["node"] != h1_node)
                .cloned()
                .collect();
            (healthy.len() == 2).then_some(())
        },
    )
    .await;

    // Host 1 comes back by running its unit's command again: no manual step.
    drop(h1);
    let h1_again = reef_on(
        &lan.hosts[0],
        &["server", "--config", &config1],
        &dir.path().join("h1-again.log"),
    );
    eventually("h1 ready again", Duration::from_secs(90), || async {
        let nodes = cli.run(&["nodes", "--json"]).await.json_opt()?;
        let ready = nodes
            .as_array()?
            .iter()
            .any(|n| n["name"] == "h1" && n["state"] == "ready");
        ready.then_some(())
    })
    .await;
    let body = eventually("HTTPS from h1 again", Duration::from_secs(60), || {
        https_body(&lan.hosts[0], "app.reef.test", &issuing_root)
    })
    .await;
    assert!(body.starts_with("v1 "), "{body}");

    for server in [h1_again, h2, h3] {
        server.terminate().await;
    }
}
