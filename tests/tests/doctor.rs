//! `reef doctor` against real hosts (network namespaces on one bridge): a
//! server and a dedicated node, each listening on 80 and 443 like a real
//! machine. A firewall rule drops port 80 on the node, and one app's domain
//! points elsewhere; the doctor names both, with their fixes, and exits 1.
//! DNS is what the machine running the doctor resolves: here a hosts file
//! mounted over `/etc/hosts` for the doctor alone.

use reef_tests::app::write_app;
use reef_tests::dev::ReefDev;
use reef_tests::lan::{Host, Lan};
use reef_tests::reef::reef_bin;
use reef_tests::{eventually, Cli};
use std::path::Path;
use std::time::Duration;

fn reef_on(host: &Host, args: &[&str], log: &Path) -> ReefDev {
    let log = std::fs::File::create(log).expect("log");
    let mut command = host.command(reef_bin());
    command
        .args(args)
        .env_remove("REEF_NATS_URL")
        .env_remove("REEF_CREDS")
        .env_remove("REEF_NATS_CA")
        .stderr(log);
    ReefDev::spawn(command)
}

/// `reef doctor` with `hosts` as its `/etc/hosts`.
async fn doctor(cli: &Cli, hosts: &Path) -> (Option<i32>, String) {
    let script = format!(
        "mount --bind {} /etc/hosts && exec {} --nats {} --creds {} --nats-ca {} doctor",
        hosts.display(),
        reef_bin().display(),
        cli.nats,
        cli.creds.display(),
        cli.ca.display()
    );
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("unshare")
            .args(["--mount", "--", "sh", "-c", &script])
            .env_remove("REEF_NATS_URL")
            .output(),
    )
    .await
    .expect("the doctor answers within 60s")
    .expect("unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_names_a_blocked_port_and_a_domain_pointing_elsewhere_with_their_fixes() {
    let lan = Lan::create(2).expect("a LAN of network namespaces (needs root, ip and nsenter)");
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (&lan.hosts[0], &lan.hosts[1]);
    let mut server = reef_on(
        a,
        &[
            "server",
            "--name",
            "a",
            "--data-dir",
            dir.path().join("a").to_str().expect("path"),
            "--acme",
            "off",
            "--stop-grace",
            "1s",
        ],
        &dir.path().join("a.log"),
    );
    let export = server.printed("export REEF_NATS_URL=").await;
    let token = server.printed("reef join --server ").await;
    let url = export.split_whitespace().next().expect("url").to_string();
    let cli = Cli::for_dev(&url, &dir.path().join("a"));
    let _node = reef_on(
        b,
        &[
            "join",
            "--foreground",
            "--name",
            "b",
            "--data-dir",
            dir.path().join("b").to_str().expect("path"),
            "--config",
            dir.path().join("b.toml").to_str().expect("path"),
            "--stop-grace",
            "1s",
            &token,
        ],
        &dir.path().join("b.log"),
    );
    eventually("two ready nodes", Duration::from_secs(60), || async {
        let nodes = cli.run(&["nodes", "--json"]).await.json_opt()?;
        let ready = nodes
            .as_array()?
            .iter()
            .filter(|n| n["state"] == "ready")
            .count();
        (ready == 2).then_some(())
    })
    .await;
    let app = dir.path().join("app");
    write_app(&app, "v1", 200, "");
    std::fs::write(
        app.join("Reef.toml"),
        std::fs::read_to_string(app.join("Reef.toml"))
            .expect("manifest")
            .replace(
                "domains = [\"hello.test\"]",
                "domains = [\"good.reef.test\", \"bad.reef.test\"]",
            ),
    )
    .expect("manifest");
    cli.ok(&["deploy", app.to_str().expect("path")]).await;
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        format!(
            "127.0.0.1 localhost\n{} good.reef.test\n192.0.2.55 bad.reef.test\n",
            b.ip
        ),
    )
    .expect("hosts");

    // Before the firewall: only the domain is wrong.
    let (code, said) = doctor(&cli, &hosts).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("bad.reef.test (app hello) points at 192.0.2.55"),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "fix: point the A record of bad.reef.test at one of: {}, {}",
            a.ip, b.ip
        )),
        "{said}"
    );
    assert!(!said.contains("good.reef.test"), "{said}");
    assert!(
        said.contains("every node reaches the others' ports 80 and 443"),
        "{said}"
    );

    // Port 80 of b dropped by a firewall: named, with the fix.
    b.block_tcp(80);
    let (code, said) = doctor(&cli, &hosts).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "port 80 (HTTP) of b ({}:80) is not reachable from a",
            b.ip
        )),
        "{said}"
    );
    assert!(said.contains("fix: open TCP 80 to b"), "{said}");
    assert!(!said.contains("443 (HTTPS) of b"), "{said}");
    for passed in ["clock", "sandbox", "versions", "nodes"] {
        assert!(
            said.lines()
                .any(|line| line.starts_with("ok") && line.contains(passed)),
            "{passed}: {said}"
        );
    }
    server.terminate().await;
}
