//! Signed commands: a command on a node's own subject runs only if the
//! leader's assignment key signed it for that node, unexpired, and not
//! before. Published here with the admin credential, which the NATS
//! server lets publish anywhere: the agent is the last line.

use reef_proto::agent::{AgentCommand, Assignment};
use reef_proto::job::JobSpec;
use reef_proto::{now_ms, AllocId, JobId, NodeId};
use reef_tests::TestCluster;
use std::time::Duration;

fn run_command(node: NodeId, script: &str) -> AgentCommand {
    AgentCommand::Run(Box::new(Assignment {
        alloc: AllocId::new(),
        job: JobId::new(),
        node,
        spec: JobSpec::new(vec!["sh".into(), "-c".into(), script.into()]),
        gpus: Vec::new(),
        issued_at_ms: now_ms(),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_expired_and_misaddressed_commands_are_refused_and_reported() {
    let cluster = TestCluster::start(1).await;
    let nodes = cluster.cli.nodes().await;
    let me: NodeId = nodes[0]["id"]
        .as_str()
        .and_then(|i| i.parse().ok())
        .expect("id");
    let key = reef_trust::ClusterDir::open(cluster.nats.url.trust().dir())
        .expect("cluster dir")
        .assignment_key()
        .expect("assignment key");
    let impostor = nkeys::KeyPair::new_cluster();
    let js = async_nats::jetstream::new(cluster.nats.url.connect().await);
    let publish = |payload: bytes::Bytes| {
        let js = js.clone();
        async move {
            js.publish(reef_proto::subjects::assign(me), payload)
                .await
                .expect("publish")
                .await
                .expect("stored");
        }
    };
    let later = now_ms() + 600_000;
    let mark = |name: &str| cluster.path(name);
    let bad = [
        (
            "unsigned",
            reef_proto::encode(&run_command(me, &format!("touch {}", mark("unsigned"))))
                .expect("encode"),
        ),
        (
            "forged",
            reef_proto::envelope::encode_sealed(
                &run_command(me, &format!("touch {}", mark("forged"))),
                me,
                1,
                later,
                |b| impostor.sign(b).expect("sign"),
            )
            .expect("encode"),
        ),
        (
            "misaddressed",
            reef_proto::envelope::encode_sealed(
                &run_command(me, &format!("touch {}", mark("misaddressed"))),
                NodeId::new(),
                2,
                later,
                |b| key.sign(b),
            )
            .expect("encode"),
        ),
        (
            "expired",
            reef_proto::envelope::encode_sealed(
                &run_command(me, &format!("touch {}", mark("expired"))),
                me,
                3,
                now_ms() - 1,
                |b| key.sign(b),
            )
            .expect("encode"),
        ),
    ];
    for (_, payload) in &bad {
        publish(payload.clone()).await;
    }
    // A good one, sent twice: it runs once.
    let runs = mark("runs");
    let good = reef_proto::envelope::encode_sealed(
        &run_command(me, &format!("echo ran >> {runs}")),
        me,
        4,
        later,
        |b| key.sign(b),
    )
    .expect("encode");
    publish(good.clone()).await;
    publish(good).await;

    let agent = cluster.agent("node-1");
    let metrics_port = agent.metrics_port.expect("metrics");
    let metrics = reef_tests::eventually(
        "every refusal to be counted",
        Duration::from_secs(20),
        || async {
            let text = reef_tests::http::get(metrics_port, "127.0.0.1", "/metrics")
                .await
                .ok()?
                .body;
            ["unsigned", "forged", "misaddressed", "expired", "replayed"]
                .iter()
                .all(|r| {
                    text.contains(&format!(
                        "reef_agent_commands_refused_total{{reason=\"{r}\"}} 1"
                    ))
                })
                .then_some(text)
        },
    )
    .await;
    assert!(metrics.contains("reef_agent_commands_refused_total"));
    let log = agent.log_text();
    for why in [
        "not signed",
        "forged or altered",
        "not this one",
        "expired at",
        "a replay",
    ] {
        assert!(log.contains(why), "the agent reports {why:?}: {log}");
    }
    reef_tests::eventually(
        "the good command to run",
        Duration::from_secs(20),
        || async {
            std::fs::read_to_string(&runs)
                .ok()
                .filter(|t| !t.is_empty())
        },
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(&runs).expect("runs"),
        "ran\n",
        "ran exactly once"
    );
    for (name, _) in &bad {
        assert!(
            !std::path::Path::new(&mark(name)).exists(),
            "the {name} command ran"
        );
    }
    // Commands the leader signs still run.
    let out = cluster.cli.run(&["run", "--", "echo", "signed"]).await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    assert_eq!(out.stdout, "signed\n");
}
