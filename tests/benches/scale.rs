//! Placement throughput end to end with 1,000 simulated agents: a real
//! nats-server and a real coordinator (release build); the agents live in this
//! process: they register over the API, heartbeat every second, and take
//! their assignments from the assign stream (one consumer for all of them),
//! acknowledging each at once. Measured: submit → assignment acknowledged,
//! for N jobs submitted by 64 concurrent clients.
//!
//! Peers measured in the same run, with the same concurrency: the same number
//! of request/replies to a trivial responder (the transport's ceiling for the
//! submissions alone), and two JetStream KV creates per job (the storage
//! ceiling: a placed job is two creates and one stream publish).
//!
//! References (not measured here): Nomad C1M placed about 3,750 containers/s
//! on 5 large servers, C2M about 1,500/s; kube-scheduler is quoted at 100 to
//! 300 pods/s.
//!
//! Run with `cargo build --release --bin reef && cargo bench -p reef-tests --bench scale`.
//! `REEF_BENCH_JOBS` sets N (default 5000), `REEF_BENCH_AGENTS` the agents (default 1000).

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use reef_proto::agent::AgentCommand;
use reef_proto::api::{ApiReply, ApiRequest, ApiResponse};
use reef_proto::node::{Heartbeat, NodeRecord, NodeResources};
use reef_proto::{decode, encode, now_ms, subjects, JobId, NodeId};
use reef_tests::{api, NatsServer, ReefProcess};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 64;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn request(client: &async_nats::Client, request: &ApiRequest) -> ApiReply {
    let payload = encode(request).expect("encode");
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        client.request(reef_tests::api::admin_subject(request.verb()), payload),
    )
    .await
    .expect("API answered in time")
    .expect("API request");
    decode::<ApiReply>(&reply.payload).expect("decode reply")
}

fn node(i: usize) -> NodeRecord {
    NodeRecord {
        id: NodeId::new(),
        name: format!("sim-{i}"),
        labels: BTreeMap::new(),
        resources: NodeResources {
            cpu_millis: 8000,
            memory_bytes: 32 << 30,
            disk_bytes: 100 << 30,
        },
        version: "sim".into(),
        started_at_ms: now_ms(),
        registered_at_ms: 0,
        sealing_key: [7; 32],
        gpus: Vec::new(),
        trust: Default::default(),
        eligibility: Default::default(),
        proxy_addr: None,
        sandbox: true,
        job_network: false,
        public_http: None,
        postgres_versions: Vec::new(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `count` calls of `call` with [`CONCURRENCY`] in flight; returns the elapsed time.
async fn concurrently<F, Fut>(count: usize, call: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(call)
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let jobs = env("REEF_BENCH_JOBS", 5000);
    let agents = env("REEF_BENCH_AGENTS", 1000);
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let client = nats.url.connect().await;

    // The transport's ceiling: request/reply to a trivial responder.
    let mut echo = client.subscribe("bench.echo").await.expect("subscribe");
    let responder_client = client.clone();
    let responder = tokio::spawn(async move {
        while let Some(msg) = echo.next().await {
            if let Some(reply) = msg.reply {
                let _ = responder_client.publish(reply, msg.payload).await;
            }
        }
    });
    let echo_time = concurrently(jobs, |_| {
        let client = client.clone();
        async move {
            client
                .request("bench.echo", bytes::Bytes::from_static(b"x"))
                .await
                .expect("echo");
        }
    })
    .await;
    responder.abort();

    // The storage ceiling: a placed job costs two KV creates (its allocation
    // and its record) and one stream publish; here the two creates alone,
    // with the same concurrency, into a scratch bucket.
    let js = jetstream::new(client.clone());
    let scratch = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "bench-scratch".into(),
            history: 1,
            ..Default::default()
        })
        .await
        .expect("scratch bucket");
    let kv_time = concurrently(jobs, |i| {
        let scratch = scratch.clone();
        async move {
            for part in ["alloc", "job"] {
                scratch
                    .create(format!("{part}-{i}"), bytes::Bytes::from(vec![0u8; 400]))
                    .await
                    .expect("create");
            }
        }
    })
    .await;

    // Simulated agents: register, heartbeat, take assignments.
    let nodes: Vec<NodeRecord> = (0..agents).map(node).collect();
    loop {
        if api::try_jobs(&client).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let registering = concurrently(agents, |i| {
        let (client, record) = (client.clone(), nodes[i].clone());
        async move {
            match request(
                &client,
                &ApiRequest::RegisterNode {
                    record,
                    credential: None,
                },
            )
            .await
            .0
            {
                Ok(ApiResponse::Registered(_)) => {}
                other => panic!("registration failed: {other:?}"),
            }
        }
    })
    .await;
    let beating = {
        let (client, ids) = (
            client.clone(),
            nodes.iter().map(|n| n.id).collect::<Vec<_>>(),
        );
        tokio::spawn(async move {
            let started = now_ms();
            loop {
                for id in &ids {
                    let beat = Heartbeat {
                        node: *id,
                        started_at_ms: started,
                        running: 0,
                        sent_at_ms: now_ms(),
                        paused: false,
                        traffic: Vec::new(),
                        services: Vec::new(),
                    };
                    let _ = client
                        .publish(subjects::heartbeat(*id), encode(&beat).expect("encode"))
                        .await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let acked: Arc<Mutex<HashMap<JobId, Instant>>> = Arc::default();
    let stream = js
        .get_stream(subjects::ASSIGN_STREAM)
        .await
        .expect("stream");
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            "sim-agents",
            consumer::pull::Config {
                durable_name: Some("sim-agents".into()),
                filter_subject: subjects::ASSIGN_WILDCARD.into(),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .expect("consumer");
    let taking = {
        let acked = acked.clone();
        let mut messages = consumer.messages().await.expect("messages");
        tokio::spawn(async move {
            while let Some(Ok(msg)) = messages.next().await {
                let command = decode::<AgentCommand>(&msg.payload);
                if msg.ack().await.is_ok() {
                    if let Ok(AgentCommand::Run(assignment)) = command {
                        acked
                            .lock()
                            .expect("lock")
                            .insert(assignment.job, Instant::now());
                    }
                }
            }
        })
    };

    // The measurement: N submissions, 64 in flight.
    let submitted: Arc<Mutex<HashMap<JobId, Instant>>> = Arc::default();
    let started = Instant::now();
    concurrently(jobs, |_| {
        let (client, submitted) = (client.clone(), submitted.clone());
        async move {
            let at = Instant::now();
            match request(&client, &ApiRequest::SubmitJob(api::shell("true")))
                .await
                .0
            {
                Ok(ApiResponse::Job(job)) => {
                    submitted.lock().expect("lock").insert(job.id, at);
                }
                other => panic!("submit failed: {other:?}"),
            }
        }
    })
    .await;
    let submitting = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while acked.lock().expect("lock").len() < jobs {
        assert!(Instant::now() < deadline, "assignments missing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked = acked.lock().expect("lock").clone();
    let submitted = submitted.lock().expect("lock").clone();
    let last = acked.values().max().copied().expect("acks");
    let total = last.duration_since(started);
    let mut latencies: Vec<Duration> = submitted
        .iter()
        .map(|(id, at)| acked[id].duration_since(*at))
        .collect();
    latencies.sort();
    beating.abort();
    taking.abort();

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{agents} simulated agents registered in {registering:.2?} ({:.0}/s)",
        rate(agents, registering)
    );
    println!(
        "{jobs} jobs, {CONCURRENCY} in flight: all submitted in {submitting:.2?}, all assignments acked after {total:.2?}"
    );
    println!(
        "end to end: {:>8.0} placements/s   submit → assignment acked p50 {:.1} ms, p99 {:.1} ms",
        rate(jobs, total),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    println!(
        "peer: NATS request/reply to a trivial responder: {:>8.0}/s  (reef reaches {:.1}% of it)",
        rate(jobs, echo_time),
        100.0 * rate(jobs, total) / rate(jobs, echo_time)
    );
    println!(
        "peer: two KV creates per job, same concurrency:     {:>8.0}/s  (reef reaches {:.1}% of it)",
        rate(jobs, kv_time),
        100.0 * rate(jobs, total) / rate(jobs, kv_time)
    );
    println!(
        "references: Nomad C1M ~3,750/s (5 servers), C2M ~1,500/s; kube-scheduler 100-300 pods/s"
    );
}
