//! Bad input from outside: garbage and oversized messages on every reef
//! subject, and CLI misuse. Nothing crashes; everything keeps serving;
//! every error names what is wrong.

use reef_proto::agent::{AgentCommand, AllocEvent, Assignment};
use reef_proto::alloc::AllocState;
use reef_proto::api::{ApiErrorKind, ApiReply, ApiRequest};
use reef_proto::job::JobSpec;
use reef_proto::node::Heartbeat;
use reef_proto::{decode, encode, subjects, AllocId, JobId, NodeId};
use reef_tests::{Cli, NatsServer, TestCluster};
use std::time::Duration;

fn garbage() -> Vec<Vec<u8>> {
    let mut payloads = vec![
        vec![],
        vec![0],
        b"REEF".to_vec(),
        b"REEF\x01\x01\xff\xff\xff\xff\xff".to_vec(),
        b"{\"json\": true}".to_vec(),
        vec![0xff; 1000],
        // A valid envelope of the wrong kind for every subject.
        encode(&Heartbeat {
            node: NodeId::new(),
            started_at_ms: 0,
            running: 0,
            sent_at_ms: 0,
            paused: false,
            traffic: Vec::new(),
            services: Vec::new(),
        })
        .expect("encode")
        .to_vec(),
    ];
    // Pseudo-random bytes, deterministic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [3usize, 17, 64, 500, 4096] {
        payloads.push(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect(),
        );
    }
    // Larger than reef's 1 MiB message limit (the test server allows 4 MiB).
    payloads.push(vec![b'R'; 2 * 1024 * 1024]);
    payloads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_every_subject_crashes_nothing() {
    let mut cluster = TestCluster::start(2).await;
    let client = cluster.nats.url.connect().await;
    let js = async_nats::jetstream::new(client.clone());
    let nodes = cluster.cli.nodes().await;
    let node: NodeId = nodes[0]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("node id");
    let alloc = AllocId::new();

    // API subjects: every request gets a typed error reply.
    let verbs = [
        subjects::verbs::JOB_SUBMIT,
        subjects::verbs::JOB_LIST,
        subjects::verbs::JOB_GET,
        subjects::verbs::JOB_STOP,
        subjects::verbs::NODE_LIST,
        subjects::verbs::NODE_REGISTER,
        "no.such.verb",
    ];
    for verb in verbs {
        for payload in garbage() {
            let reply = tokio::time::timeout(
                Duration::from_secs(10),
                client.request(reef_tests::api::admin_subject(verb), payload.into()),
            )
            .await
            .expect("a reply, not a hang")
            .expect("a reply");
            let ApiReply(result) = decode::<ApiReply>(&reply.payload).expect("reply decodes");
            let err = result.expect_err("garbage is refused");
            assert_eq!(err.kind, ApiErrorKind::Invalid, "{verb}: {err:?}");
        }
    }
    // A request whose verb and subject disagree is refused, not executed.
    let reply = client
        .request(
            reef_tests::api::admin_subject(subjects::verbs::JOB_LIST),
            encode(&ApiRequest::SubmitJob(JobSpec::new(vec!["true".into()]))).expect("encode"),
        )
        .await
        .expect("reply");
    let ApiReply(result) = decode::<ApiReply>(&reply.payload).expect("decode");
    assert!(result
        .expect_err("mismatch refused")
        .message
        .contains("was sent to"));

    // Core NATS and JetStream subjects the agents and coordinator consume.
    let core = [subjects::heartbeat(node), "reef.hb.x".to_string()];
    let streamed = [
        subjects::assign(node),
        subjects::event(node, alloc),
        "reef.events.x.y".to_string(),
        "reef.logs.x.y.out".to_string(),
    ];
    for payload in garbage() {
        for subject in &core {
            let _ = client
                .publish(subject.clone(), payload.clone().into())
                .await;
        }
        for subject in &streamed {
            // Oversized ones are refused by the stream itself; the rest are stored and consumed.
            if let Ok(ack) = js.publish(subject.clone(), payload.clone().into()).await {
                let _ = ack.await;
            }
        }
    }
    // Well-formed but wrong: an assignment for another node, an event for an
    // allocation that does not exist, an event claiming another node's allocation.
    let foreign = AgentCommand::Run(Box::new(Assignment {
        alloc: AllocId::new(),
        job: JobId::new(),
        node: NodeId::new(),
        spec: JobSpec::new(vec!["touch".into(), cluster.path("must-not-exist")]),
        gpus: vec![],
        issued_at_ms: 0,
    }));
    js.publish(subjects::assign(node), encode(&foreign).expect("encode"))
        .await
        .expect("publish")
        .await
        .expect("ack");
    let bogus_event = AllocEvent {
        alloc,
        job: JobId::new(),
        node,
        seq: 1,
        state: AllocState::Exited { code: 0 },
        at_ms: 0,
        output_lines: None,
        usage: None,
        result: None,
    };
    js.publish(
        subjects::event(node, alloc),
        encode(&bogus_event).expect("encode"),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
    client.flush().await.expect("flush");

    // Everyone is still up and serving.
    let out = cluster.cli.run(&["run", "--", "echo", "still here"]).await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    assert_eq!(out.stdout, "still here\n");
    assert_eq!(cluster.cli.wait_for_nodes(2).await.len(), 2);
    assert!(cluster.coordinator.is_running());
    for agent in &mut cluster.agents {
        assert!(agent.is_running());
    }
    assert!(!std::path::Path::new(&cluster.path("must-not-exist")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_misuse_gets_a_clear_error_and_a_nonzero_exit() {
    let nats = NatsServer::start().await;
    // Unreachable NATS: a quick, clear error.
    let port = reef_tests::wait::free_port();
    let nowhere = Cli::new(&nats.url.with_url(format!("tls://127.0.0.1:{port}")));
    let started = std::time::Instant::now();
    let out = nowhere
        .run_with_timeout(&["nodes"], Duration::from_secs(15))
        .await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("could not reach NATS"), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    let cli = Cli::new(&nats.url);
    // NATS up but no coordinator.
    let out = cli.run(&["jobs"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("no coordinator"), "{out:?}");

    let cases: &[(&[&str], &str)] = &[
        (&["run"], "CMD"),
        (&["run", "--"], "CMD"),
        (&["run", "--bogus", "--", "true"], "--bogus"),
        (&["run", "--mem", "lots", "--", "true"], "invalid size"),
        (&["run", "--cpu", "0", "--", "true"], "cpu"),
        (
            &["run", "--timeout", "soon", "--", "true"],
            "invalid duration",
        ),
        (&["run", "--env", "1X=2", "--", "true"], "env"),
        (&["run", "--env", "NOEQUALS", "--", "true"], "KEY=VALUE"),
        (&["run", "--label", "a b=c", "--", "true"], "label"),
        (&["run", "--workdir", "relative", "--", "true"], "workdir"),
        (&["job", "status", "not-a-job"], "not a job id"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, expected) in cases {
        let out = cli.run(args).await;
        assert_ne!(out.code, Some(0), "reef {args:?} should fail");
        assert!(
            out.stderr.contains(expected),
            "reef {args:?}: expected {expected:?} in {:?}",
            out.stderr
        );
    }

    // A deploy that cannot work is refused before anything is uploaded (no
    // coordinator is even asked), naming the manifest it read.
    let dir = tempfile::tempdir().expect("tempdir");
    let app = |name: &str, manifest: &str, file: &str| {
        let at = dir.path().join(name);
        std::fs::create_dir_all(&at).expect("mkdir");
        std::fs::write(at.join(file), manifest).expect("manifest");
        at
    };
    let other = app("other", "[app]\nname = \"x\"\nbogus = 1\n", "Reef2.toml");
    let missing = app(
        "missing",
        "[app]\nname = \"x\"\n[deploy]\nbinary = \"server\"\n",
        "Reef.toml",
    );
    let plain = app(
        "plain",
        "[app]\nname = \"x\"\n[deploy]\nbinary = \"server\"\n",
        "Reef.toml",
    );
    std::fs::write(plain.join("server"), "#!/bin/sh\n").expect("server");
    let other_manifest = other.join("Reef2.toml").display().to_string();
    let deploys: [(Vec<String>, &str); 3] = [
        (
            vec![
                "deploy".into(),
                other.display().to_string(),
                "-f".into(),
                other_manifest,
            ],
            "Reef2.toml: ",
        ),
        (
            vec!["deploy".into(), missing.display().to_string()],
            "does not exist",
        ),
        (
            vec!["deploy".into(), plain.display().to_string()],
            "not executable",
        ),
    ];
    for (args, expected) in deploys {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli.run(&args).await;
        assert_ne!(out.code, Some(0), "reef {args:?} should fail");
        assert!(
            out.stderr.contains(expected),
            "reef {args:?}: expected {expected:?} in {:?}",
            out.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_streams_and_consumers_are_made_again_and_work_goes_on() {
    let cluster = TestCluster::start(1).await;
    cluster.cli.ok(&["run", "--", "true"]).await;
    let js = async_nats::jetstream::new(cluster.nats.url.connect().await);
    let node = cluster.cli.nodes().await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    js.get_stream(subjects::ASSIGN_STREAM)
        .await
        .expect("assign stream")
        .delete_consumer(&format!("assign-{node}"))
        .await
        .expect("delete the node's consumer");
    js.get_stream(subjects::EVENTS_STREAM)
        .await
        .expect("events stream")
        .delete_consumer(subjects::EVENTS_CONSUMER)
        .await
        .expect("delete the coordinators' consumer");
    js.delete_stream(subjects::EVENTS_STREAM)
        .await
        .expect("delete the events stream");
    js.delete_stream(subjects::ASSIGN_STREAM)
        .await
        .expect("delete the assignments stream");

    // The coordinator makes them again instead of exiting, the node gets
    // its consumer back, and jobs run.
    let out = reef_tests::eventually(
        "a job to run after the deletions",
        Duration::from_secs(60),
        || async {
            let out = cluster
                .cli
                .run_with_timeout(&["run", "--", "echo", "back"], Duration::from_secs(20))
                .await;
            (out.code == Some(0)).then_some(out)
        },
    )
    .await;
    assert_eq!(out.stdout, "back\n");
    assert!(js.get_stream(subjects::EVENTS_STREAM).await.is_ok());
    assert!(js.get_stream(subjects::ASSIGN_STREAM).await.is_ok());
    let mut cluster = cluster;
    assert!(cluster.coordinator.is_running(), "{}", cluster.logs());
}

/// An allocation recorded before its job's record, which never followed (the
/// leader died or a write failed in between), is withdrawn by the next
/// leader instead of being published and run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_no_job_points_at_is_withdrawn_never_run() {
    use reef_proto::alloc::Allocation;
    use reef_proto::job::Resources;
    let mut cluster = TestCluster::start(1).await;
    let node: NodeId = cluster.cli.nodes().await[0]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("node id");
    let js = async_nats::jetstream::new(cluster.nats.url.connect().await);
    let allocs = js
        .get_key_value(subjects::ALLOCS_BUCKET)
        .await
        .expect("allocs bucket");
    let stray = Allocation {
        id: AllocId::new(),
        job: JobId::new(),
        node,
        resources: Resources::default(),
        state: AllocState::Assigned,
        gpus: Vec::new(),
        event_seq: 0,
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    allocs
        .put(stray.id.to_string(), encode(&stray).expect("encode"))
        .await
        .expect("put");
    cluster.coordinator.restart();
    let state = reef_tests::eventually(
        "the stray allocation to be withdrawn",
        Duration::from_secs(30),
        || async {
            let entry = allocs.get(stray.id.to_string()).await.ok()??;
            let alloc: Allocation = decode(&entry).ok()?;
            alloc.state.is_terminal().then_some(alloc.state)
        },
    )
    .await;
    assert_eq!(
        state,
        AllocState::Lost {
            reason: "withdrawn: no job points at it".into()
        }
    );
    // The cluster works on, and its view holds nothing for the stray.
    let out = cluster.cli.ok(&["run", "--", "echo", "fine"]).await;
    assert_eq!(out.stdout, "fine\n");
    let nodes = cluster.cli.nodes().await;
    assert_eq!(nodes[0]["allocations"], 0, "{}", cluster.logs());
}
