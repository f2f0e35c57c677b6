//! Secure by default, tried as an attacker would: with no credential,
//! another cluster's, or no TLS, NATS gives nothing; with a node's or a
//! user's credential, everything outside its role is refused by the NATS
//! server itself (or, for API verbs its subject allows, by the
//! coordinator), and the cluster keeps working.

use reef_proto::api::{ApiErrorKind, ApiReply, ApiRequest};
use reef_proto::job::JobSpec;
use reef_proto::roles::Role;
use reef_proto::{decode, encode, subjects, AllocId, JobId, NodeId};
use reef_tests::confined::Confined;
use reef_tests::{Cli, NatsServer, ReefProcess, TestCluster};
use std::time::Duration;

const BUCKETS: [&str; 16] = [
    subjects::JOBS_BUCKET,
    subjects::ALLOCS_BUCKET,
    subjects::NODES_BUCKET,
    subjects::APPS_BUCKET,
    subjects::RELEASES_BUCKET,
    subjects::INSTANCES_BUCKET,
    subjects::ROUTES_BUCKET,
    subjects::SECRETS_BUCKET,
    subjects::CERTS_BUCKET,
    subjects::LEADER_BUCKET,
    subjects::SERVERS_BUCKET,
    subjects::CRON_BUCKET,
    subjects::CRON_TICKS_BUCKET,
    subjects::UI_LINKS_BUCKET,
    subjects::UI_KEYS_BUCKET,
    subjects::SERVICES_BUCKET,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_credential_and_tls_nats_gives_nothing() {
    let nats = NatsServer::start().await;
    let url = nats.url.to_string();

    // No credential at all.
    let anonymous = async_nats::ConnectOptions::new()
        .add_root_certificates(nats.url.ca())
        .require_tls(true)
        .connection_timeout(Duration::from_secs(5))
        .connect(&url)
        .await;
    let err = anonymous.expect_err("no credential, no connection");
    assert!(
        err.to_string().to_lowercase().contains("authorization"),
        "{err}"
    );

    // A credential of another cluster: the server judges it (after failing
    // to find its account) and nothing gets through; the CLI says why.
    let other = NatsServer::start().await;
    if let Ok(foreign) = nats.url.connect_with(&other.url.admin_creds()).await {
        let js = async_nats::jetstream::new(foreign);
        assert!(
            js.query_account().await.is_err(),
            "another cluster's credential"
        );
    }
    let out = Cli::with_creds(&nats.url, &other.url.admin_creds(), &nats.url.ca())
        .run(&["nodes"])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("refused the credential"), "{out:?}");
    let log = std::fs::read_to_string(nats.dir.path().join("nats.log")).expect("nats log");
    assert!(log.contains("authentication error"), "{log}");

    // A credential of this cluster that has expired: refused.
    let cluster_dir = reef_trust::ClusterDir::open(nats.url.trust().dir()).expect("cluster dir");
    let an_hour_ago = reef_proto::now_ms() / 1000 - 3600;
    let (stale, _) = cluster_dir
        .issue_joiner("stale", an_hour_ago, false)
        .expect("an expired credential");
    let stale_file = nats.dir.path().join("stale.creds");
    std::fs::write(&stale_file, stale.as_bytes()).expect("write");
    let expired = async_nats::ConnectOptions::with_credentials_file(&stale_file)
        .await
        .expect("creds")
        .add_root_certificates(nats.url.ca())
        .require_tls(true)
        .connection_timeout(Duration::from_secs(5))
        .connect(&url)
        .await;
    let err = expired.expect_err("an expired credential, no connection");
    assert!(
        err.to_string().to_lowercase().contains("authorization"),
        "{err}"
    );

    // A good credential, but a CA it does not trust: no TLS, no talk.
    let untrusted = async_nats::ConnectOptions::with_credentials_file(nats.url.admin_creds())
        .await
        .expect("creds")
        .add_root_certificates(other.url.ca())
        .require_tls(true)
        .connection_timeout(Duration::from_secs(5))
        .connect(&url)
        .await;
    assert!(untrusted.is_err(), "a server the CA does not vouch for");

    // Plain TCP: the server speaks only to clients that start TLS.
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", nats.port))
        .await
        .expect("tcp");
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    let info = lines.next_line().await.expect("info").expect("INFO line");
    assert!(info.contains("\"tls_required\":true"), "{info}");
    write
        .write_all(b"CONNECT {\"verbose\":false}\r\nSUB > 1\r\nPING\r\n")
        .await
        .expect("write");
    let answer = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the server answers or closes in time");
    assert!(
        !matches!(&answer, Ok(Some(line)) if line.starts_with("PONG")),
        "a plain-TCP client was answered: {answer:?}"
    );

    // The cluster's own credentials work, and the CLI says what is wrong
    // when it has none.
    nats.url.connect().await;
    let out = tokio::process::Command::new(reef_tests::reef::reef_bin())
        .args(["--nats", &url, "nodes"])
        .env_remove("REEF_CREDS")
        .output()
        .await
        .expect("reef nodes");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no credentials"),
        "{out:?}"
    );
}

/// Every forbidden action of node `me`, as (publish subjects, subscribe subjects).
fn forbidden_for_node(me: NodeId, other: NodeId) -> (Vec<String>, Vec<String>) {
    let job = JobId::new();
    let alloc = AllocId::new();
    let mut publish = vec![
        // Assignments: forge one, pull or bind another node's, ack for it.
        subjects::assign(other),
        subjects::assign(me),
        format!("$JS.API.CONSUMER.MSG.NEXT.REEF_ASSIGN.assign-{other}"),
        format!("$JS.API.CONSUMER.INFO.REEF_ASSIGN.assign-{other}"),
        format!("$JS.ACK.REEF_ASSIGN.assign-{other}.1.1.1.1.1"),
        // Consumers: nodes create none and delete none, not even their own.
        "$JS.API.CONSUMER.CREATE.REEF_ASSIGN".into(),
        format!("$JS.API.CONSUMER.CREATE.REEF_ASSIGN.mine.reef.assign.{me}"),
        "$JS.API.CONSUMER.DURABLE.CREATE.REEF_ASSIGN.mine".into(),
        format!("$JS.API.CONSUMER.DELETE.REEF_ASSIGN.assign-{me}"),
        "$JS.API.CONSUMER.CREATE.REEF_EVENTS".into(),
        // Another node's events, heartbeats and logs.
        subjects::event(other, alloc),
        subjects::heartbeat(other),
        subjects::logs(other, "admin", job, alloc),
        subjects::instance_logs(other, "hello", reef_proto::InstanceId::new()),
        // Registering as another node, or asking for its certificate;
        // calling as a user or coordinator.
        subjects::api(
            Role::Node,
            &other.to_string(),
            subjects::verbs::NODE_REGISTER,
        ),
        subjects::api(
            Role::Node,
            &other.to_string(),
            subjects::verbs::NODE_CERTIFICATE,
        ),
        format!(
            "reef.coord.leader.api.admin.admin.{}",
            subjects::verbs::JOB_LIST
        ),
        // Streams: create, delete, purge.
        "$JS.API.STREAM.CREATE.MINE".into(),
        "$JS.API.STREAM.DELETE.REEF_ASSIGN".into(),
        "$JS.API.STREAM.PURGE.REEF_EVENTS".into(),
        "$JS.API.STREAM.DELETE.REEF_LOGS".into(),
        // `reef doctor` asks nodes; a node asks none, not even itself.
        subjects::doctor(other),
        subjects::doctor(me),
        // Joining as a server is for a server token's credential.
        subjects::api(Role::Joiner, "token", subjects::verbs::SERVER_JOIN),
        // Backups: a node asks no node to make or restore one, and reads
        // no backup records (it writes parts only).
        subjects::backup(other),
        subjects::backup(me),
        // Artifacts: no writes.
        "$O.reef-artifacts.C.forged".into(),
        "$JS.API.STREAM.PURGE.OBJ_reef-artifacts".into(),
    ];
    for verb in subjects::verbs::ALL {
        publish.push(subjects::api(Role::Admin, "admin", verb));
    }
    for bucket in BUCKETS {
        publish.push(format!("$KV.{bucket}.forged"));
        publish.push(format!("$JS.API.STREAM.PURGE.KV_{bucket}"));
        publish.push(format!("$JS.API.STREAM.DELETE.KV_{bucket}"));
        publish.push(format!("$JS.API.STREAM.MSG.DELETE.KV_{bucket}"));
    }
    // Buckets a node never reads.
    for bucket in [
        subjects::SECRETS_BUCKET,
        subjects::JOBS_BUCKET,
        subjects::NODES_BUCKET,
        subjects::LEADER_BUCKET,
        subjects::CRON_BUCKET,
        subjects::CRON_TICKS_BUCKET,
        subjects::BACKUPS_BUCKET,
        subjects::UI_LINKS_BUCKET,
        subjects::UI_KEYS_BUCKET,
    ] {
        publish.push(format!("$JS.API.STREAM.INFO.KV_{bucket}"));
        publish.push(format!("$JS.API.DIRECT.GET.KV_{bucket}"));
        publish.push(format!("$JS.API.CONSUMER.CREATE.KV_{bucket}"));
    }
    let subscribe = vec![
        subjects::assign(other),
        subjects::ASSIGN_WILDCARD.into(),
        "reef.api.>".into(),
        "reef.hb.*".into(),
        subjects::EVENTS_WILDCARD.into(),
        subjects::LOGS_WILDCARD.into(),
        "_INBOX.>".into(),
        format!("{}.>", subjects::inbox_prefix(Role::Admin, "admin")),
        format!(
            "{}.>",
            subjects::inbox_prefix(Role::Node, &other.to_string())
        ),
        "$KV.>".into(),
        subjects::doctor(other),
        "reef.doctor.*".into(),
        subjects::backup(other),
        "reef.backup.*".into(),
        ">".into(),
    ];
    (publish, subscribe)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_credential_is_refused_everything_outside_its_own_subjects() {
    let cluster = TestCluster::start(2).await;
    let nodes = cluster.cli.nodes().await;
    let id = |name: &str| -> NodeId {
        nodes
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["id"].as_str())
            .and_then(|id| id.parse().ok())
            .expect("node id")
    };
    let (me, other) = (id("node-1"), id("node-2"));
    let creds = cluster.dir.path().join("creds/node-1.creds");
    let node = Confined::connect(&cluster.nats.url, &creds).await;

    // What a node may do is really done: its own heartbeat arrives.
    let admin = cluster.nats.url.connect().await;
    let mut beats = admin
        .subscribe(subjects::heartbeat(me))
        .await
        .expect("subscribe");
    admin.flush().await.expect("flush");
    // Sent again each couple of seconds, on a machine busy with other tests;
    // a subject the server refused would never deliver it.
    let beat = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            node.client
                .publish(subjects::heartbeat(me), "not a heartbeat".into())
                .await
                .expect("publish");
            node.client.flush().await.expect("flush");
            let seen = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    let msg = futures::StreamExt::next(&mut beats).await.expect("beat");
                    if msg.payload.as_ref() == b"not a heartbeat" {
                        return msg;
                    }
                }
            })
            .await;
            if let Ok(msg) = seen {
                return msg;
            }
        }
    })
    .await
    .expect("the node's own heartbeat subject is allowed");
    assert_eq!(beat.subject.as_str(), subjects::heartbeat(me));

    let (publish, subscribe) = forbidden_for_node(me, other);
    let mut allowed = Vec::new();
    for subject in &publish {
        if !node.publish_refused(subject).await {
            allowed.push(format!("publish {subject}"));
        }
    }
    for subject in &subscribe {
        if !node.subscribe_refused(subject).await {
            allowed.push(format!("subscribe {subject}"));
        }
    }
    assert!(allowed.is_empty(), "the server let a node do: {allowed:#?}");

    // Verbs its subject allows but its role does not: the coordinator says no.
    let own = |verb: &str| subjects::api(Role::Node, &me.to_string(), verb);
    let submit = encode(&ApiRequest::SubmitJob(JobSpec::new(vec!["true".into()]))).expect("encode");
    let reply = node
        .request(&own(subjects::verbs::JOB_SUBMIT), submit)
        .await;
    let err = decode::<ApiReply>(&reply.payload)
        .expect("decode")
        .0
        .expect_err("a node may not submit jobs");
    assert_eq!(err.kind, ApiErrorKind::Forbidden, "{err:?}");
    assert!(err.message.contains("needs the submitter role"), "{err:?}");

    // A sign-in link to the dashboard is for users only.
    let reply = node
        .request(
            &own(subjects::verbs::UI_LINK),
            encode(&ApiRequest::UiLink).expect("encode"),
        )
        .await;
    let err = decode::<ApiReply>(&reply.payload)
        .expect("decode")
        .0
        .expect_err("a node may not sign in to the dashboard");
    assert_eq!(err.kind, ApiErrorKind::Forbidden, "{err:?}");
    assert!(err.message.contains("needs the viewer role"), "{err:?}");

    // Registering another node's id under its own subject: refused.
    let record = node_record(other);
    let register = encode(&ApiRequest::RegisterNode {
        record,
        credential: None,
    })
    .expect("encode");
    let reply = node
        .request(&own(subjects::verbs::NODE_REGISTER), register)
        .await;
    let err = decode::<ApiReply>(&reply.payload)
        .expect("decode")
        .0
        .expect_err("a node registers only itself");
    assert_eq!(err.kind, ApiErrorKind::Forbidden, "{err:?}");

    // The cluster kept working.
    let out = cluster.cli.run(&["run", "--", "echo", "still here"]).await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    assert_eq!(out.stdout, "still here\n");
    assert_eq!(cluster.cli.wait_for_nodes(2).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contributed_node_cannot_read_routes_certificates_challenges_services_or_artifacts() {
    let mut cluster = TestCluster::start(1).await;
    cluster.agents.push(ReefProcess::agent(
        &cluster.nats.url,
        cluster.dir.path(),
        "lent",
        &["--trust", "contributed"],
    ));
    let nodes = cluster.cli.wait_for_nodes(2).await;
    let lent = nodes
        .iter()
        .find(|n| n["name"] == "lent")
        .expect("lent node");
    assert_eq!(lent["trust"], "contributed", "{lent}");
    let creds = cluster.dir.path().join("creds/lent.creds");
    let node = Confined::connect(&cluster.nats.url, &creds).await;
    let mut allowed = Vec::new();
    for stream in [
        format!("KV_{}", subjects::ROUTES_BUCKET),
        format!("KV_{}", subjects::CERTS_BUCKET),
        format!("KV_{}", subjects::CHALLENGES_BUCKET),
        format!("KV_{}", subjects::SERVICES_BUCKET),
        format!("OBJ_{}", subjects::ARTIFACTS_STORE),
    ] {
        for subject in [
            format!("$JS.API.STREAM.INFO.{stream}"),
            format!("$JS.API.DIRECT.GET.{stream}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}"),
        ] {
            if !node.publish_refused(&subject).await {
                allowed.push(subject);
            }
        }
    }
    assert!(allowed.is_empty(), "a contributed node may: {allowed:#?}");

    // Registering itself as dedicated: the credential's class wins, and a
    // registration without the credential is refused.
    let id: NodeId = lent["id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .expect("id");
    let mut record = node_record(id);
    record.trust = reef_proto::node::TrustClass::Dedicated;
    let text = std::fs::read_to_string(&creds).expect("creds");
    let jwt = reef_trust::creds::parse(&text).expect("creds").jwt;
    let subject = subjects::api(Role::Node, &id.to_string(), subjects::verbs::NODE_REGISTER);
    let bare = encode(&ApiRequest::RegisterNode {
        record: record.clone(),
        credential: None,
    })
    .expect("encode");
    let err = decode::<ApiReply>(&node.request(&subject, bare).await.payload)
        .expect("decode")
        .0
        .expect_err("no credential, no registration");
    assert_eq!(err.kind, ApiErrorKind::Forbidden, "{err:?}");
    let vouched = encode(&ApiRequest::RegisterNode {
        record,
        credential: Some(jwt),
    })
    .expect("encode");
    decode::<ApiReply>(&node.request(&subject, vouched).await.payload)
        .expect("decode")
        .0
        .expect("a registration with its credential");
    let nodes = cluster.cli.nodes().await;
    let lent = nodes
        .iter()
        .find(|n| n["name"] == "impostor")
        .expect("re-registered");
    assert_eq!(lent["trust"], "contributed", "{lent}");

    // It gets no certificate for the node-to-node links.
    let subject = subjects::api(
        Role::Node,
        &id.to_string(),
        subjects::verbs::NODE_CERTIFICATE,
    );
    let peer_key = rcgen::KeyPair::generate().expect("key");
    let ask = encode(&ApiRequest::NodeCertificate {
        public_key: peer_key.public_key_raw().to_vec(),
    })
    .expect("encode");
    let err = decode::<ApiReply>(&node.request(&subject, ask).await.payload)
        .expect("decode")
        .0
        .expect_err("no certificate for a contributed node");
    assert_eq!(err.kind, ApiErrorKind::Forbidden, "{err:?}");
    assert!(err.message.contains("contributed"), "{err:?}");

    // Certificate keys are sealed to the dedicated node only.
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["lent.reef.test".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let cert_file = cluster.dir.path().join("lent-cert.pem");
    let key_file = cluster.dir.path().join("lent-key.pem");
    std::fs::write(&cert_file, cert.pem()).expect("cert");
    std::fs::write(&key_file, key.serialize_pem()).expect("key");
    let args = [
        "certs",
        "add",
        "lent.reef.test",
        "--cert",
        cert_file.to_str().expect("path"),
        "--key",
        key_file.to_str().expect("path"),
    ];
    cluster.cli.ok(&args).await;
    let certs = cluster.cli.ok(&["certs", "list", "--json"]).await.json();
    assert_eq!(
        certs[0]["nodes"], 1,
        "sealed for the dedicated node only: {certs}"
    );

    // Its credential, not its flags, decides what it is.
    let mut liar = ReefProcess::agent(
        &cluster.nats.url,
        cluster.dir.path(),
        "lent",
        &["--trust", "dedicated"],
    );
    reef_tests::eventually(
        "an agent claiming another trust class to stop",
        Duration::from_secs(30),
        || {
            let running = liar.is_running();
            async move { (!running).then_some(()) }
        },
    )
    .await;
    assert!(
        liar.log_text()
            .contains("this node's credential makes it Contributed"),
        "{}",
        liar.log_text()
    );
    // And a job still runs on the cluster.
    let out = cluster.cli.run(&["run", "--", "echo", "ok"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_role_does_its_work_and_is_refused_the_rest() {
    let cluster = TestCluster::start(1).await;
    let user = |role: &str| Cli::user(&cluster.nats.url, role, &format!("{role}-1"));
    let (viewer, submitter, deployer) = (user("viewer"), user("submitter"), user("deployer"));

    // A viewer reads and changes nothing.
    viewer.ok(&["nodes"]).await;
    viewer.ok(&["jobs"]).await;
    viewer.ok(&["apps"]).await;
    let refused = [
        (&["run", "--", "true"][..], "needs the submitter role"),
        (&["node", "drain", "node-1"][..], "needs the admin role"),
        (
            &["secrets", "set", "hello", "K"][..],
            "needs the deployer role",
        ),
        (
            &["cron", "add", "p", "--schedule", "@daily", "--", "true"][..],
            "needs the submitter role",
        ),
        (
            &["maintenance", "on", "hello"][..],
            "needs the deployer role",
        ),
    ];
    for (args, why) in refused {
        let out = viewer.run_with_stdin(args, b"v").await;
        assert_ne!(out.code, Some(0), "viewer: reef {args:?}");
        assert!(out.stderr.contains(why), "viewer: reef {args:?}: {out:?}");
    }

    // A submitter runs jobs and reads their output, and nothing else.
    let out = submitter
        .run(&["run", "--", "echo", "from a submitter"])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    assert_eq!(out.stdout, "from a submitter\n");
    let out = submitter.run(&["scale", "hello", "2"]).await;
    assert!(out.stderr.contains("needs the deployer role"), "{out:?}");
    let out = submitter.run(&["maintenance", "off", "hello"]).await;
    assert!(out.stderr.contains("needs the deployer role"), "{out:?}");

    // It owns its jobs: another submitter neither sees nor stops them, nor
    // reads their logs; an admin sees every job.
    let mine = submitter
        .ok(&["run", "--detach", "--", "sleep", "30"])
        .await
        .stdout
        .trim()
        .to_string();
    let listed = submitter.ok(&["jobs", "--json"]).await.json();
    let listed = listed.as_array().expect("jobs");
    assert!(
        listed.iter().all(|j| j["owner"] == "submitter-1"),
        "{listed:?}"
    );
    assert_eq!(listed.len(), 2, "{listed:?}");
    let bob = Cli::user(&cluster.nats.url, "submitter", "bob");
    assert_eq!(
        bob.ok(&["jobs", "--json"]).await.json(),
        serde_json::json!([])
    );
    for args in [
        &["job", "status", &mine][..],
        &["job", "stop", &mine][..],
        &["logs", &mine][..],
    ] {
        let out = bob.run(args).await;
        assert_ne!(out.code, Some(0), "bob: reef {args:?}");
        assert!(
            out.stderr.contains("only its own jobs"),
            "bob: reef {args:?}: {out:?}"
        );
    }
    let all = cluster.cli.ok(&["jobs", "--json"]).await.json();
    assert!(
        all.as_array()
            .expect("jobs")
            .iter()
            .any(|j| j["id"] == mine.as_str()),
        "{all}"
    );
    submitter.ok(&["job", "stop", &mine]).await;

    // Its periodic jobs are its own too.
    submitter
        .ok(&[
            "cron",
            "add",
            "nightly",
            "--schedule",
            "0 3 * * *",
            "--",
            "true",
        ])
        .await;
    let listed = submitter.ok(&["cron", "list", "--json"]).await.json();
    assert_eq!(listed[0]["owner"], "submitter-1", "{listed}");
    assert_eq!(
        bob.ok(&["cron", "list", "--json"]).await.json(),
        serde_json::json!([])
    );
    for args in [
        &["cron", "history", "nightly"][..],
        &["cron", "rm", "nightly"][..],
    ] {
        let out = bob.run(args).await;
        assert_ne!(out.code, Some(0), "bob: reef {args:?}");
        assert!(
            out.stderr
                .contains("a submitter sees and removes only its own"),
            "bob: reef {args:?}: {out:?}"
        );
    }
    viewer.ok(&["cron", "history", "nightly"]).await;
    submitter.ok(&["cron", "rm", "nightly"]).await;

    // A deployer deploys, but drains no node and runs no job.
    let app = cluster.dir.path().join("hello");
    reef_tests::app::write_app(&app, "v1", 200, "");
    let out = deployer.run(&["deploy", app.to_str().expect("path")]).await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    deployer.ok(&["status", "hello"]).await;
    let out = deployer.run(&["node", "drain", "node-1"]).await;
    assert!(out.stderr.contains("needs the admin role"), "{out:?}");
    let out = deployer.run(&["run", "--", "true"]).await;
    assert!(out.stderr.contains("needs the submitter role"), "{out:?}");

    // A submitter reads neither another's job logs nor the jobs bucket.
    let creds = cluster.nats.url.user_creds("submitter", "mallory");
    let mallory = Confined::connect(&cluster.nats.url, &creds).await;
    let mut allowed = Vec::new();
    for subject in [
        format!(
            "$JS.API.CONSUMER.CREATE.{}.c.{}",
            subjects::LOGS_STREAM,
            subjects::owned_job_logs("submitter-1")
        ),
        format!(
            "$JS.API.CONSUMER.CREATE.{}.c.reef.logs.>",
            subjects::LOGS_STREAM
        ),
        format!("$JS.API.DIRECT.GET.KV_{}", subjects::JOBS_BUCKET),
        format!("$JS.API.CONSUMER.CREATE.KV_{}", subjects::JOBS_BUCKET),
        format!("$JS.API.DIRECT.GET.KV_{}", subjects::CRON_BUCKET),
        format!("$JS.API.CONSUMER.CREATE.KV_{}", subjects::CRON_TICKS_BUCKET),
        format!("$KV.{}.forged", subjects::CRON_BUCKET),
    ] {
        if !mallory.publish_refused(&subject).await {
            allowed.push(subject);
        }
    }
    assert!(allowed.is_empty(), "a submitter may: {allowed:#?}");

    // No user can call as another: the server refuses the subject.
    let creds = cluster.nats.url.user_creds("viewer", "eve");
    let eve = Confined::connect(&cluster.nats.url, &creds).await;
    let mut allowed = Vec::new();
    for subject in [
        subjects::api(Role::Admin, "admin", subjects::verbs::NODE_DRAIN),
        subjects::api(Role::Viewer, "viewer-1", subjects::verbs::JOB_LIST),
        subjects::api(Role::Submitter, "eve", subjects::verbs::JOB_SUBMIT),
        subjects::api(
            Role::Node,
            &NodeId::new().to_string(),
            subjects::verbs::NODE_CERTIFICATE,
        ),
        format!("$KV.{}.hello", subjects::APPS_BUCKET),
        "$JS.API.STREAM.DELETE.REEF_LOGS".into(),
        subjects::doctor(NodeId::new()),
        subjects::api(Role::Joiner, "token", subjects::verbs::SERVER_JOIN),
        // The dashboard's links and session key are the coordinators' alone.
        format!("$JS.API.DIRECT.GET.KV_{}", subjects::UI_LINKS_BUCKET),
        format!("$JS.API.CONSUMER.CREATE.KV_{}", subjects::UI_LINKS_BUCKET),
        format!("$JS.API.STREAM.INFO.KV_{}", subjects::UI_KEYS_BUCKET),
        format!("$JS.API.DIRECT.GET.KV_{}", subjects::UI_KEYS_BUCKET),
        format!("$KV.{}.forged", subjects::UI_LINKS_BUCKET),
    ] {
        if !eve.publish_refused(&subject).await {
            allowed.push(subject);
        }
    }
    for subject in ["reef.api.>", "_INBOX.>", "reef.logs.>"] {
        if !eve.subscribe_refused(subject).await {
            allowed.push(format!("subscribe {subject}"));
        }
    }
    assert!(allowed.is_empty(), "a viewer may: {allowed:#?}");
}

/// A registration as an agent would send it.
fn node_record(id: NodeId) -> reef_proto::node::NodeRecord {
    reef_proto::node::NodeRecord {
        id,
        name: "impostor".into(),
        labels: Default::default(),
        resources: reef_proto::node::NodeResources {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
            disk_bytes: 1 << 30,
        },
        version: "forged".into(),
        started_at_ms: 1,
        registered_at_ms: 0,
        sealing_key: [9; 32],
        gpus: Vec::new(),
        trust: reef_proto::node::TrustClass::Contributed,
        eligibility: Default::default(),
        proxy_addr: None,
        sandbox: true,
        job_network: false,
        public_http: None,
        postgres_versions: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_users_and_nodes_are_disconnected_and_refused_within_seconds() {
    let cluster = TestCluster::start(2).await;
    let ca = cluster.nats.url.ca();

    // A user added through the coordinator, with a key made by the CLI.
    let creds = cluster.dir.path().join("ci.creds");
    let path = creds.to_str().expect("path");
    let out = cluster
        .cli
        .ok(&["user", "add", "ci", "--role", "viewer", "--out", path])
        .await;
    assert!(out.stdout.contains("user ci (viewer)"), "{out:?}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&creds)
        .expect("creds")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = cluster
        .cli
        .run(&[
            "user",
            "add",
            "ci",
            "--role",
            "admin",
            "--out",
            &format!("{path}.2"),
        ])
        .await;
    assert!(again.stderr.contains("user ci exists"), "{again:?}");
    let ci = Cli::with_creds(&cluster.nats.url, &creds, &ca);
    ci.ok(&["nodes"]).await;
    let out = ci.run(&["user", "list"]).await;
    assert!(out.stderr.contains("needs the admin role"), "{out:?}");
    let users = cluster.cli.ok(&["user", "list", "--json"]).await.json();
    let listed = users
        .as_array()
        .and_then(|u| u.iter().find(|u| u["name"] == "ci"))
        .cloned()
        .expect("ci listed");
    assert_eq!(listed["role"], "viewer");
    assert!(listed["revoked_at_s"].is_null(), "{listed}");

    // Revoked: the live connection closes, and a new one is refused.
    let live = Confined::connect(&cluster.nats.url, &creds).await;
    let started = std::time::Instant::now();
    cluster.cli.ok(&["user", "rm", "ci"]).await;
    closes(&live.client, "the revoked user's connection").await;
    eprintln!("revoked user disconnected after {:?}", started.elapsed());
    let out = ci.run(&["nodes"]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("refused the credential"), "{out:?}");
    let users = cluster.cli.ok(&["user", "list", "--json"]).await.json();
    assert!(
        users
            .as_array()
            .and_then(|u| u.iter().find(|u| u["name"] == "ci"))
            .is_some_and(|u| u["revoked_at_s"].is_u64()),
        "{users}"
    );

    // A removed user's periodic jobs go with it: nothing runs in its name.
    let creds = cluster.dir.path().join("cj.creds");
    let path = creds.to_str().expect("path");
    cluster
        .cli
        .ok(&["user", "add", "cj", "--role", "submitter", "--out", path])
        .await;
    let cj = Cli::with_creds(&cluster.nats.url, &creds, &ca);
    cj.ok(&[
        "cron",
        "add",
        "cj-nightly",
        "--schedule",
        "0 3 * * *",
        "--",
        "true",
    ])
    .await;
    cluster
        .cli
        .ok(&[
            "cron",
            "add",
            "admins",
            "--schedule",
            "0 3 * * *",
            "--",
            "true",
        ])
        .await;
    cluster.cli.ok(&["user", "rm", "cj"]).await;
    let crons = cluster.cli.ok(&["cron", "list", "--json"]).await.json();
    let names: Vec<&str> = crons
        .as_array()
        .expect("crons")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["admins"], "{crons}");

    // A removed node: its agent is cut off and its credential refused.
    let node_creds = cluster.dir.path().join("creds/node-2.creds");
    let node = Confined::connect(&cluster.nats.url, &node_creds).await;
    cluster.cli.ok(&["node", "rm", "node-2"]).await;
    closes(&node.client, "the removed node's connection").await;
    let refused = cluster.nats.url.connect_with(&node_creds).await;
    if let Ok(client) = refused {
        let js = async_nats::jetstream::new(client);
        assert!(
            js.query_account().await.is_err(),
            "a removed node's credential"
        );
    }
    // The rest of the cluster works on.
    let out = cluster.cli.run(&["run", "--", "echo", "ok"]).await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    let nodes = cluster.cli.nodes().await;
    assert!(nodes.iter().all(|n| n["name"] != "node-2"), "{nodes:?}");
}

/// Waits until the server has closed `client`'s connection.
async fn closes(client: &async_nats::Client, what: &str) {
    reef_tests::eventually(&format!("{what} to close"), Duration::from_secs(10), || {
        let state = client.connection_state();
        async move { (state != async_nats::connection::State::Connected).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_credential_cannot_exhaust_the_server() {
    let cluster = TestCluster::start(1).await;
    let creds = cluster.dir.path().join("creds/node-1.creds");
    let node = Confined::connect(&cluster.nats.url, &creds).await;
    let me = cluster.cli.nodes().await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Subscriptions: a node may hold a few hundred, not thousands.
    let inbox = subjects::inbox_prefix(Role::Node, &me);
    let mut held = Vec::new();
    for i in 0..300 {
        match node.client.subscribe(format!("{inbox}.flood.{i}")).await {
            Ok(sub) => held.push(sub),
            Err(_) => break,
        }
    }
    node.client.flush().await.ok();
    assert!(
        node.told("maximum subscriptions exceeded").await,
        "300 subscriptions were taken"
    );
    drop(held);

    // And the cluster is fine.
    let out = cluster.cli.run(&["run", "--", "echo", "ok"]).await;
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_rotates_without_cutting_the_cluster_off() {
    let mut cluster = TestCluster::start(1).await;
    let ca = cluster.nats.url.ca();
    let old_ca = cluster.dir.path().join("old-ca.pem");
    std::fs::copy(&ca, &old_ca).expect("keep the old CA");
    let dir = cluster.nats.url.trust().dir().display().to_string();
    let out = cluster
        .cli
        .run(&["cluster", "rotate-ca", "--dir", &dir])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("trusts both"), "{out:?}");

    // Every process takes the bundle (a clean restart, as an operator would
    // do it), then the server gets its new certificate.
    assert!(
        cluster.coordinator.terminate().await,
        "coordinator stopped cleanly"
    );
    cluster.coordinator.restart();
    for agent in &mut cluster.agents {
        assert!(agent.terminate().await, "agent stopped cleanly");
        agent.restart();
    }
    cluster.nats.reconfigure().await;
    // On a timeout, every process's log says why the node is not back.
    cluster.wait_ready(1).await;
    let out = cluster.cli.run(&["run", "--", "echo", "after"]).await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    assert_eq!(out.stdout, "after\n");

    // A client that trusts only the old CA no longer trusts the server.
    let stale = Cli::with_creds(&cluster.nats.url, &cluster.nats.url.admin_creds(), &old_ca);
    let out = stale.run(&["nodes"]).await;
    assert_ne!(out.code, Some(0), "{out:?}");

    let out = cluster
        .cli
        .run(&["cluster", "rotate-ca", "--dir", &dir, "--finish"])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let bundle = std::fs::read_to_string(&ca).expect("ca");
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1);
    cluster.cli.ok(&["nodes"]).await;
}
