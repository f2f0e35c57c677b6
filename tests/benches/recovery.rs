//! Recovery times, end to end, with real processes (release builds):
//!
//! - node loss: 3 agents, an app with 2 replicas; `kill -9` an agent that hosts
//!   one; time until a replacement is healthy on another node. Compared with
//!   the node grace period (3 s), which a node only silent must wait out; a
//!   killed agent's closed connection is noticed at once.
//! - leader failover: 3 coordinators; `kill -9` the leader; time until another
//!   holds the lease, and until a job submitted right after the kill has run.
//!   Compared with the lease (3 s), which a leader only silent must run out;
//!   a killed leader's closed connection is noticed at once.
//!
//! Run with `cargo build --release --bin reef && cargo bench -p reef-tests --bench recovery`.
//! `REEF_BENCH_ROUNDS` sets the rounds of each (default 3).

use reef_proto::job::JobState;
use reef_tests::app::write_app;
use reef_tests::{api, leader, Cli, NatsServer, ReefProcess, TestCluster};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

async fn healthy_nodes(cli: &Cli) -> Vec<String> {
    reef_tests::app::healthy_on(cli).await.0
}

async fn node_loss() -> Duration {
    let mut cluster = TestCluster::start(3).await;
    let app = cluster.dir.path().join("app");
    write_app(&app, "v1", 200, "replicas = 2\n");
    cluster
        .cli
        .ok(&["deploy", app.to_str().expect("path")])
        .await;
    let before = loop {
        let nodes = healthy_nodes(&cluster.cli).await;
        if nodes.len() == 2 {
            break nodes;
        }
        tokio::time::sleep(POLL).await;
    };
    let victim = before[0].clone();
    let index: usize = victim.trim_start_matches("node-").parse().expect("node-N");
    cluster.agents[index - 1].kill();
    let killed = Instant::now();
    loop {
        let nodes = healthy_nodes(&cluster.cli).await;
        if nodes.len() == 2 && !nodes.contains(&victim) {
            return killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "no replacement");
        tokio::time::sleep(POLL).await;
    }
}

async fn leader_failover() -> (Duration, Duration) {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut coordinators: Vec<(String, ReefProcess)> = ["c1", "c2", "c3"]
        .iter()
        .map(|n| {
            (
                n.to_string(),
                ReefProcess::coordinator(&nats.url, dir.path(), &["--name", n]),
            )
        })
        .collect();
    let _agent = ReefProcess::agent(&nats.url, dir.path(), "node-1", &[]);
    Cli::new(&nats.url).wait_for_nodes(1).await;
    let client = nats.url.connect().await;
    let first = loop {
        if let Some(lease) = leader::current(&client).await {
            break lease;
        }
        tokio::time::sleep(POLL).await;
    };
    let (_, process) = coordinators
        .iter_mut()
        .find(|(name, _)| *name == first.name)
        .expect("leader is ours");
    process.kill();
    let killed = Instant::now();
    let mut led = None;
    let job = loop {
        // Submissions wait in a follower's relay until the new leader answers.
        let payload =
            reef_proto::encode(&reef_proto::api::ApiRequest::SubmitJob(api::shell("true")))
                .expect("encode");
        let subject = reef_tests::api::admin_subject(reef_proto::subjects::verbs::JOB_SUBMIT);
        if let Ok(Ok(reply)) =
            tokio::time::timeout(Duration::from_secs(5), client.request(subject, payload)).await
        {
            if let Ok(reef_proto::api::ApiReply(Ok(reef_proto::api::ApiResponse::Job(job)))) =
                reef_proto::decode::<reef_proto::api::ApiReply>(&reply.payload)
            {
                break job.id;
            }
        }
        tokio::time::sleep(POLL).await;
    };
    loop {
        if led.is_none() {
            if let Some(lease) = leader::current(&client).await {
                if lease.coordinator != first.coordinator {
                    led = Some(killed.elapsed());
                }
            }
        }
        let jobs = api::try_jobs(&client).await.unwrap_or_default();
        let done = jobs
            .iter()
            .any(|j| j.id == job && j.state == JobState::Exited { code: 0 });
        if done && led.is_some() {
            return (led.unwrap_or_default(), killed.elapsed());
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "no failover");
        tokio::time::sleep(POLL).await;
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn worst(samples: &[Duration]) -> Duration {
    samples.iter().copied().max().unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("REEF_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut loss = Vec::new();
    for _ in 0..rounds {
        let took = node_loss().await;
        println!("node loss: replacement healthy {}", secs(took));
        loss.push(took);
    }
    let mut lease = Vec::new();
    let mut job = Vec::new();
    for _ in 0..rounds {
        let (led, ran) = leader_failover().await;
        println!(
            "leader kill: new leader {}, a job submitted at the kill ran {}",
            secs(led),
            secs(ran)
        );
        lease.push(led);
        job.push(ran);
    }
    let grace = Duration::from_secs(3);
    println!();
    println!("median (worst) over {rounds} rounds");
    for (what, samples, against) in [
        ("node loss → replacement healthy", &loss, "node grace"),
        ("leader kill → new leader", &lease, "lease"),
        ("leader kill → new job has run", &job, "lease"),
    ] {
        let middle = median(samples.clone());
        println!(
            "{what:<34} {:>8} ({})   {:.2}x the 3 s {against}",
            secs(middle),
            secs(worst(samples)),
            middle.as_secs_f64() / grace.as_secs_f64()
        );
    }
}
