//! Control-plane backups: `reef backup create` on one cluster, `reef backup
//! restore` into a new one (its own keys, its own machines), after which
//! the app serves again at the same release with its secrets. A damaged
//! backup, another cluster's key and an app that exists already are
//! refused, and nothing is written.

use reef_tests::app::write_app;
use reef_tests::dev::ReefDev;
use reef_tests::wait::free_port;
use reef_tests::{eventually, http, Cli};
use std::path::Path;
use std::time::Duration;

/// `reef server` alone on `ip`, HTTP on `http`; its CLI once it is up.
async fn server(dir: &Path, name: &str, ip: &str, http: u16) -> (ReefDev, Cli) {
    let mut server = ReefDev::server(
        &[
            "--name",
            name,
            "--cluster-name",
            name,
            "--host",
            ip,
            "--nats-listen",
            &format!("{ip}:{}", free_port()),
            "--cluster-listen",
            &format!("{ip}:{}", free_port()),
            "--http",
            &format!("{ip}:{http}"),
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
        dir,
    );
    let export = server.printed("export REEF_NATS_URL=").await;
    let url = export.split_whitespace().next().expect("url").to_string();
    let cli = Cli::for_dev(&url, dir);
    eventually("the server's node", Duration::from_secs(30), || async {
        let nodes = cli.run(&["nodes", "--json"]).await.json_opt()?;
        (nodes.as_array()?.len() == 1).then_some(())
    })
    .await;
    (server, cli)
}

async fn get(ip: &str, port: u16, path: &str) -> Option<String> {
    let addr = format!("{ip}:{port}").parse().expect("addr");
    http::get_at(addr, "hello.test", path)
        .await
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restored_into_a_new_cluster_brings_the_app_back_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a_http, b_http) = (free_port(), free_port());
    let (a, a_cli) = server(&a_dir, "old", "127.0.0.31", a_http).await;

    let app = dir.path().join("app");
    write_app(
        &app,
        "v1",
        200,
        "\n[env]\nGREETING = \"${secret:greeting}\"\n",
    );
    let set = a_cli
        .run_with_stdin(
            &["secrets", "set", "hello", "greeting", "--create"],
            b"hi there",
        )
        .await;
    assert_eq!(set.code, Some(0), "{set:?}");
    a_cli.ok(&["deploy", app.to_str().expect("path")]).await;
    write_app(
        &app,
        "v2",
        200,
        "\n[env]\nGREETING = \"${secret:greeting}\"\n",
    );
    a_cli.ok(&["deploy", app.to_str().expect("path")]).await;
    a_cli
        .ok(&[
            "cron",
            "add",
            "nightly",
            "--schedule",
            "0 3 * * *",
            "--tz",
            "Europe/Berlin",
            "--",
            "true",
        ])
        .await;
    let served = eventually("v2 on the old cluster", Duration::from_secs(30), || {
        get("127.0.0.31", a_http, "/")
    })
    .await;
    assert!(served.starts_with("v2 "), "{served}");

    let file = dir.path().join("cluster.reefbak");
    let made = a_cli
        .ok(&[
            "backup",
            "create",
            file.to_str().expect("path"),
            "--data-dir",
            a_dir.to_str().expect("path"),
        ])
        .await;
    assert!(made.stdout.contains("2 artifacts"), "{made:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("the backup").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let bytes = std::fs::read(&file).expect("read");
    assert!(
        !bytes.windows(8).any(|w| w == b"hi there"),
        "the secret is not in the file in the clear"
    );
    a.terminate().await;

    // A new cluster: its own keys and machines.
    let (b, b_cli) = server(&b_dir, "new", "127.0.0.32", b_http).await;
    let restore = |file: &Path, key: Option<&Path>| {
        let mut args = vec![
            "backup".to_string(),
            "restore".into(),
            "--file".into(),
            file.to_str().expect("path").into(),
            "--data-dir".into(),
            b_dir.to_str().expect("path").into(),
        ];
        if let Some(key) = key {
            args.extend(["--key".into(), key.to_str().expect("path").into()]);
        }
        let b_cli = &b_cli;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            b_cli.run(&args).await
        }
    };
    let no_apps = || async {
        let apps = b_cli.ok(&["apps", "--json"]).await.json();
        assert_eq!(apps.as_array().map(Vec::len), Some(0), "{apps}");
    };
    let old_key = a_dir.join("cluster.key");

    // With this cluster's own key: refused, naming whose backup it is.
    let out = restore(&file, None).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("cluster old") && out.stderr.contains("--key"),
        "{out:?}"
    );
    no_apps().await;
    // Damaged: refused, nothing written.
    let damaged = dir.path().join("damaged.reefbak");
    let mut broken = bytes.clone();
    let at = broken.len() * 2 / 3;
    broken[at] ^= 0x40;
    std::fs::write(&damaged, &broken).expect("write");
    let out = restore(&damaged, Some(&old_key)).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("damaged"), "{out:?}");
    no_apps().await;

    // The right key: the app is back, at release 2, with its secret.
    let out = restore(&file, Some(&old_key)).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("1 app (hello)"), "{out:?}");
    assert!(out.stdout.contains("1 periodic job"), "{out:?}");
    // The periodic job is back, and the new cluster's leader keeps it.
    let crons = eventually("the periodic job", Duration::from_secs(20), || async {
        let list = b_cli.ok(&["cron", "list", "--json"]).await.json();
        (list.as_array().map(Vec::len) == Some(1)).then_some(list)
    })
    .await;
    assert_eq!(crons[0]["name"], "nightly", "{crons}");
    assert_eq!(crons[0]["time_zone"], "Europe/Berlin", "{crons}");
    assert!(crons[0]["next_ms"].as_u64().is_some(), "{crons}");
    let served = eventually(
        "the app on the new cluster",
        Duration::from_secs(60),
        || get("127.0.0.32", b_http, "/"),
    )
    .await;
    assert!(served.starts_with("v2 "), "{served}");
    assert_eq!(
        get("127.0.0.32", b_http, "/env/GREETING").await.as_deref(),
        Some("hi there")
    );
    let status = b_cli.ok(&["status", "hello", "--json"]).await.json();
    assert_eq!(status["release"], 2, "{status}");
    let releases = b_cli.ok(&["releases", "hello"]).await.stdout;
    assert!(releases.lines().count() >= 3, "{releases}");

    // Again: the app exists, so nothing is overwritten.
    let out = restore(&file, Some(&old_key)).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("already has hello"), "{out:?}");
    b.terminate().await;
}
