//! HTTPS end to end: certificates ordered from a real ACME server (pebble,
//! validating over HTTP-01 against a node's proxy) for every app deployed,
//! certificates added from files and served by every node, HTTP→HTTPS
//! redirects, private keys that never travel or rest in the clear, and a
//! failed order's backoff that survives a change of leader.

use reef_acme::testing::{Pebble, PebbleOptions};
use reef_tests::app::write_named_app;
use reef_tests::{
    eventually, http, https, leader, leaks, Cli, NatsServer, ReefProcess, TestCluster,
};
use std::collections::HashMap;
use std::time::Duration;

/// Waits until `name` answers 200 over HTTPS on `port`, trusting `roots`;
/// on failure, says what the last attempt got and adds `context()` (logs).
async fn https_ok(
    port: u16,
    name: &str,
    roots: &str,
    context: &dyn Fn() -> String,
) -> http::Response {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let last = match https::get(port, name, "/", roots).await {
            Ok(response) if response.status == 200 => return response,
            other => other,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{name} did not answer 200 over HTTPS on port {port} within 60s; last: {last:?}\n{}",
                context()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_get_certificates_from_acme_as_they_are_deployed() {
    assert!(
        Pebble::installed(),
        "pebble is not installed: apt-get install -y pebble (scripts/test.sh does)"
    );
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = ReefProcess::agent(&nats.url, dir.path(), "node-1", &[]);
    let (http_port, https_port) = (
        agent.http_port.expect("http port"),
        agent.https_port.expect("https port"),
    );
    // Pebble resolves every name to 127.0.0.1 and validates on the agent's plain-HTTP port.
    let pebble = Pebble::start(PebbleOptions::new(http_port))
        .await
        .expect("pebble starts");
    let listener_root = dir.path().join("pebble-listener-root.pem");
    std::fs::write(&listener_root, pebble.listener_root_pem()).expect("write root");
    let coordinator = ReefProcess::coordinator(
        &nats.url,
        dir.path(),
        &[
            "--acme-directory",
            pebble.directory_url(),
            "--acme-ca-root",
            listener_root.to_str().expect("path"),
            "--acme-email",
            "ops@reef.test",
        ],
    );
    let cli = reef_tests::Cli::new(&nats.url);
    cli.wait_for_nodes(1).await;
    let issuing_root = pebble.issuing_root_pem().await.expect("pebble's root");
    let logs = || {
        format!(
            "--- coordinator ---\n{}\n--- agent ---\n{}\n--- pebble ---\n{}",
            coordinator.log_text(),
            agent.log_text(),
            pebble.log_tail()
        )
    };

    let first = dir.path().join("first");
    write_named_app(&first, "first", &["app.reef.test"], "", "");
    let out = cli.run(&["deploy", first.to_str().expect("path")]).await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", logs());
    let answer = https_ok(https_port, "app.reef.test", &issuing_root, &logs).await;
    assert!(answer.body.starts_with("v1 "), "{answer:?}");

    let listed = cli.ok(&["certs", "list", "--json"]).await.json();
    let certs = listed.as_array().expect("a list");
    let first_cert = certs
        .iter()
        .find(|c| c["domains"] == serde_json::json!(["app.reef.test"]))
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(first_cert["source"], "acme");
    assert_eq!(first_cert["nodes"], 1);
    assert!(first_cert["not_after_ms"].as_u64().expect("expiry") > reef_proto::now_ms());

    // Another app, deployed later, without restarting anything; it redirects plain HTTP.
    let second = dir.path().join("second");
    write_named_app(
        &second,
        "second",
        &["other.reef.test"],
        "https_redirect = true",
        "",
    );
    let out = cli.run(&["deploy", second.to_str().expect("path")]).await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", logs());
    let answer = https_ok(https_port, "other.reef.test", &issuing_root, &logs).await;
    assert!(answer.body.starts_with("v1 "), "{answer:?}");

    let redirected = http::get(http_port, "other.reef.test", "/some/path?x=1&y=two")
        .await
        .expect("plain HTTP answers");
    assert_eq!(redirected.status, 308, "{redirected:?}");
    let location = redirected
        .headers
        .iter()
        .find(|(k, _)| k == "location")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        location,
        Some(format!("https://other.reef.test:{https_port}/some/path?x=1&y=two").as_str())
    );
    let plain = http::get(http_port, "app.reef.test", "/")
        .await
        .expect("answers");
    assert_eq!(
        plain.status, 200,
        "an app without the option is not redirected"
    );

    // The CA really fetched the answers from the node's proxy.
    assert!(
        agent.log_text().contains("answering an ACME challenge"),
        "{}",
        logs()
    );
    // Nothing is left to answer once the orders are done.
    eventually(
        "the challenges to be retracted",
        Duration::from_secs(10),
        || async {
            let client = nats.url.connect_with(&nats.url.admin_creds()).await.ok()?;
            let kv = async_nats::jetstream::new(client)
                .get_key_value("reef-challenges")
                .await
                .ok()?;
            let keys: Vec<String> = futures::TryStreamExt::try_collect(kv.keys().await.ok()?)
                .await
                .ok()?;
            keys.is_empty().then_some(())
        },
    )
    .await;

    // No certificate's private key in the clear: not in NATS, not on the
    // node's disk (where the one key is the node's own, for the peer links).
    let streams = leaks::assert_nowhere_in_nats(&nats.url, b"PRIVATE KEY", "a private key").await;
    assert!(streams.iter().any(|n| n == "KV_reef-certs"), "{streams:?}");
    let own = dir.path().join("node-1/tls/peer-key.pem");
    let found: Vec<_> = leaks::files_containing(&dir.path().join("node-1"), b"PRIVATE KEY")
        .into_iter()
        .filter(|path| *path != own)
        .collect();
    assert!(
        found.is_empty(),
        "a private key on the node's disk: {found:?}"
    );
}

/// A CA of the test's own, and certificates it signs.
struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

struct Issued {
    chain_pem: String,
    key_pem: String,
}

impl TestCa {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "reef tls test CA");
        let key = rcgen::KeyPair::generate().expect("key");
        Self {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    fn root_pem(&self) -> String {
        self.issuer.pem()
    }

    fn issue(&self, names: &[&str], expired: bool) -> Issued {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Issued {
            chain_pem: format!("{}{}", cert.pem(), self.issuer.pem()),
            key_pem: key.serialize_pem(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_files_are_served_by_every_node_until_removed() {
    let mut cluster = TestCluster::start(2).await;
    let ca = TestCa::new();
    let root = ca.root_pem();
    let write = |name: &str, text: &str| {
        let path = cluster.dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let good = ca.issue(&["files.reef.test", "www.files.reef.test"], false);
    let cert = write("cert.pem", &good.chain_pem);
    let key = write("key.pem", &good.key_pem);
    let other_key = write(
        "other-key.pem",
        &ca.issue(&["files.reef.test"], false).key_pem,
    );
    let old = ca.issue(&["files.reef.test"], true);
    let old_cert = write("old-cert.pem", &old.chain_pem);
    let old_key = write("old-key.pem", &old.key_pem);

    // Refused, with a reason, before anything is stored.
    for (args, reason) in [
        (
            vec!["files.reef.test", "--cert", &cert, "--key", &other_key],
            "does not belong to the certificate",
        ),
        (
            vec!["elsewhere.reef.test", "--cert", &cert, "--key", &key],
            "does not cover elsewhere.reef.test",
        ),
        (
            vec!["files.reef.test", "--cert", &old_cert, "--key", &old_key],
            "expired",
        ),
    ] {
        let mut command = vec!["certs", "add"];
        command.extend(args);
        let out = cluster.cli.run(&command).await;
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains(reason), "{reason}: {out:?}");
    }

    let out = cluster
        .cli
        .ok(&[
            "certs",
            "add",
            "files.reef.test",
            "www.files.reef.test",
            "--cert",
            &cert,
            "--key",
            &key,
        ])
        .await;
    assert!(out.stdout.contains("sealed for 2 nodes"), "{out:?}");

    let app = cluster.dir.path().join("app");
    write_named_app(&app, "files", &["files.reef.test"], "", "replicas = 2\n");
    let out = cluster
        .cli
        .run(&["deploy", app.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    for agent in &cluster.agents {
        let port = agent.https_port.expect("https port");
        let answer = https_ok(port, "files.reef.test", &root, &|| cluster.logs()).await;
        assert!(answer.body.starts_with("v1 "), "{answer:?}");
        // The second name is served with the same certificate (no app routes it: 404).
        let www = https::get(port, "www.files.reef.test", "/", &root)
            .await
            .expect("TLS for the second name");
        assert_eq!(www.status, 404, "{www:?}");
    }

    // A node that joins later gets its sealed copy from the leader.
    cluster.agents.push(ReefProcess::agent(
        &cluster.nats.url,
        cluster.dir.path(),
        "node-3",
        &[],
    ));
    cluster.cli.wait_for_nodes(3).await;
    let late = cluster.agents[2].https_port.expect("https port");
    eventually(
        "the new node to serve the certificate",
        Duration::from_secs(30),
        || async {
            https::get(late, "www.files.reef.test", "/", &root)
                .await
                .ok()
        },
    )
    .await;
    let listed = cluster.cli.ok(&["certs", "list", "--json"]).await.json();
    assert_eq!(
        listed[0]["domains"],
        serde_json::json!(["files.reef.test", "www.files.reef.test"])
    );
    assert_eq!(listed[0]["source"], "file");
    assert_eq!(listed[0]["nodes"], 3, "{listed}");

    // The key travelled and rests only encrypted. (The first 48 base64
    // characters of every P-256 PKCS#8 key are the same; the secret follows.)
    let key_body: String = good
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let secret = &key_body.as_bytes()[50..90];
    let streams = leaks::assert_nowhere_in_nats(&cluster.nats.url, secret, "the private key").await;
    assert!(streams.iter().any(|n| n == "KV_reef-certs"), "{streams:?}");
    leaks::assert_nowhere_in_nats(&cluster.nats.url, b"PRIVATE KEY", "a private key").await;
    for name in ["node-1", "node-2", "node-3"] {
        let found = leaks::files_containing(&cluster.dir.path().join(name), secret);
        assert!(
            found.is_empty(),
            "the private key on {name}'s disk: {found:?}"
        );
    }

    cluster.cli.ok(&["certs", "rm", "files.reef.test"]).await;
    for agent in &cluster.agents {
        let port = agent.https_port.expect("https port");
        eventually(
            "the node to stop serving the certificate",
            Duration::from_secs(30),
            || async {
                https::get(port, "files.reef.test", "/", &root)
                    .await
                    .is_err()
                    .then_some(())
            },
        )
        .await;
    }
    let listed = cluster.cli.ok(&["certs", "list", "--json"]).await.json();
    assert_eq!(listed, serde_json::json!([]));
    let out = cluster.cli.run(&["certs", "rm", "files.reef.test"]).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("no certificate"), "{out:?}");
}

/// Whether `reef certs list` shows a failed order for `domain`.
async fn order_failed(cli: &Cli, domain: &str) -> Option<()> {
    let out = cli.run(&["certs", "list", "--json"]).await;
    let listed: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    listed
        .as_array()?
        .iter()
        .any(|c| c["domains"] == serde_json::json!([domain]) && c["last_error"].is_string())
        .then_some(())
}

/// Lines of a coordinator's log that start an order for `domain`.
fn orders_for(coordinator: &ReefProcess, domain: &str) -> usize {
    coordinator
        .log_text()
        .lines()
        .filter(|line| line.contains("ordering a certificate") && line.contains(domain))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_waits_out_a_failed_order_instead_of_ordering_again() {
    assert!(
        Pebble::installed(),
        "pebble is not installed: apt-get install -y pebble (scripts/test.sh does)"
    );
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _agent = ReefProcess::agent(&nats.url, dir.path(), "node-1", &[]);
    // Pebble validates on a port where nothing listens: every order fails.
    let pebble = Pebble::start(PebbleOptions::new(reef_tests::wait::free_port()))
        .await
        .expect("pebble starts");
    let root = dir.path().join("pebble-listener-root.pem");
    std::fs::write(&root, pebble.listener_root_pem()).expect("write root");
    let root = root.to_str().expect("path");
    let mut coordinators: HashMap<String, ReefProcess> = ["c1", "c2"]
        .into_iter()
        .map(|name| {
            let args = [
                "--name",
                name,
                "--acme-directory",
                pebble.directory_url(),
                "--acme-ca-root",
                root,
                "--acme-email",
                "ops@reef.test",
            ];
            let process = ReefProcess::coordinator(&nats.url, dir.path(), &args);
            (name.to_string(), process)
        })
        .collect();
    let cli = Cli::new(&nats.url);
    cli.wait_for_nodes(1).await;
    let client = nats.url.connect().await;
    let first = leader::wait(&client).await;
    let logs = |coordinators: &HashMap<String, ReefProcess>| {
        let mut text = String::new();
        for (name, process) in coordinators {
            text.push_str(&format!("--- {name} ---\n{}\n", process.log_text()));
        }
        text
    };

    let failing = dir.path().join("failing");
    write_named_app(&failing, "failing", &["fails.reef.test"], "", "");
    let out = cli.run(&["deploy", failing.to_str().expect("path")]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    eventually("the order to fail", Duration::from_secs(60), || {
        order_failed(&cli, "fails.reef.test")
    })
    .await;
    assert_eq!(orders_for(&coordinators[&first.name], "fails.reef.test"), 1);

    // The leader dies; the next one takes up the failure and its backoff.
    coordinators
        .get_mut(&first.name)
        .expect("the leader")
        .kill();
    let next = eventually("a new leader", Duration::from_secs(30), || async {
        leader::current(&client)
            .await
            .filter(|lease| lease.name != first.name)
    })
    .await;
    let successor = &coordinators[&next.name];
    eventually(
        "the new leader to take up the failed order",
        Duration::from_secs(30),
        || async {
            successor
                .log_text()
                .contains("waiting out earlier failed certificate orders")
                .then_some(())
        },
    )
    .await;
    eventually(
        "the new leader to show the failure",
        Duration::from_secs(15),
        || order_failed(&cli, "fails.reef.test"),
    )
    .await;

    // Another app makes the new leader run a pass and order for its domain:
    // that pass leaves the failed domain alone, as its backoff is not over.
    let other = dir.path().join("other");
    write_named_app(&other, "other", &["other.reef.test"], "", "");
    cli.wait_for_nodes(1).await;
    let out = cli.run(&["deploy", other.to_str().expect("path")]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    eventually(
        "the new leader to order for the new app",
        Duration::from_secs(30),
        || async { (orders_for(successor, "other.reef.test") > 0).then_some(()) },
    )
    .await;
    assert_eq!(
        orders_for(successor, "fails.reef.test"),
        0,
        "the new leader ordered again before the backoff was over\n{}",
        logs(&coordinators)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_host_is_served_over_https_with_a_wildcard_certificate_from_files() {
    let cluster = TestCluster::start(1).await;
    let ca = TestCa::new();
    let root = ca.root_pem();
    let issued = ca.issue(&["*.wild.reef.test"], false);
    let cert = cluster.dir.path().join("cert.pem");
    let key = cluster.dir.path().join("key.pem");
    std::fs::write(&cert, &issued.chain_pem).expect("write");
    std::fs::write(&key, &issued.key_pem).expect("write");
    cluster
        .cli
        .ok(&[
            "certs",
            "add",
            "*.wild.reef.test",
            "--cert",
            cert.to_str().expect("path"),
            "--key",
            key.to_str().expect("path"),
        ])
        .await;
    let app = cluster.dir.path().join("app");
    write_named_app(&app, "wild", &["*.wild.reef.test"], "", "");
    cluster.deploy(&app).await;
    let port = cluster.agents[0].https_port.expect("https port");
    let answer = https_ok(port, "tenant.wild.reef.test", &root, &|| cluster.logs()).await;
    assert!(answer.body.starts_with("v1 "), "{answer:?}");
    // The certificate covers one label, and so does the route.
    assert!(
        https::get(port, "a.b.wild.reef.test", "/", &root)
            .await
            .is_err(),
        "no certificate for two labels"
    );
}
