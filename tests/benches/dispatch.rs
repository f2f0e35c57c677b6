//! Job dispatch latency, end to end, on a real nats-server with a real
//! coordinator and two real agents (release builds), next to two baselines
//! measured in the same run:
//!
//! - `local spawn`: this process spawning `true` directly (the floor for
//!   "a process started and exited");
//! - `nats rtt`: a core NATS request/reply to a trivial responder (the floor
//!   for one message round trip).
//!
//! Measures, over N trivial jobs (`true`): submit → `running` event seen
//! (the child process has started) and submit → terminal event seen (exit
//! reported). First one job at a time (dispatch latency), then as a burst:
//! all N submitted as fast as 16 concurrent clients can (throughput, and
//! latency including the time a job queues behind the others).
//!
//! The same jobs run on two agents with the sandbox (the default) and on two
//! with `--sandbox off`, in the same run, so the sandbox's cost is measured
//! against its absence.
//!
//! Run with `scripts/bench.sh` (or `cargo build --release --bin reef && cargo
//! bench -p reef-tests --bench dispatch`). `REEF_BENCH_JOBS` sets N (default 1000).

use futures::StreamExt;
use reef_proto::agent::AllocEvent;
use reef_proto::alloc::AllocState;
use reef_proto::{decode, JobId};
use reef_tests::{api, Cli, NatsServer, ReefProcess};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Seen {
    running: HashMap<JobId, Instant>,
    ended: HashMap<JobId, Instant>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Stats {
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    Stats {
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
    }
}

fn row(name: &str, s: &Stats) {
    println!(
        "{name:<44} p50 {:>8.2} ms   p99 {:>8.2} ms",
        ms(s.p50),
        ms(s.p99)
    );
}

async fn local_spawn(n: usize) -> Stats {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let status = tokio::process::Command::new("true")
            .status()
            .await
            .expect("spawn true");
        assert!(status.success());
        samples.push(t0.elapsed());
    }
    stats(samples)
}

async fn nats_rtt(client: &async_nats::Client, n: usize) -> Stats {
    let mut sub = client.subscribe("bench.echo").await.expect("subscribe");
    let responder_client = client.clone();
    let responder = tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            if let Some(reply) = msg.reply {
                let _ = responder_client.publish(reply, msg.payload).await;
            }
        }
    });
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        client
            .request("bench.echo", "x".into())
            .await
            .expect("echo");
        samples.push(t0.elapsed());
    }
    responder.abort();
    stats(samples)
}

/// Submits `n` jobs with `in_flight` submissions at a time; returns
/// (submit→running, submit→ended, wall time).
async fn reef_jobs(
    client: &async_nats::Client,
    seen: &Arc<Mutex<Seen>>,
    n: usize,
    in_flight: usize,
    sandbox: &str,
) -> (Stats, Stats, Duration) {
    let started = Instant::now();
    let submitted: Vec<(JobId, Instant)> = futures::stream::iter(0..n)
        .map(|_| async {
            let t0 = Instant::now();
            let mut spec = reef_proto::job::JobSpec::new(vec!["true".into()]);
            spec.constraints.insert("sandbox".into(), sandbox.into());
            let job = api::submit(client, spec).await;
            if in_flight == 1 {
                wait_for_end(seen, job.id).await;
            }
            (job.id, t0)
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    for (id, _) in &submitted {
        wait_for_end(seen, *id).await;
    }
    let wall = started.elapsed();
    let seen = seen.lock().expect("lock");
    let mut to_running = Vec::new();
    let mut to_end = Vec::new();
    for (id, t0) in submitted {
        if let Some(t) = seen.running.get(&id) {
            to_running.push(t.saturating_duration_since(t0));
        }
        to_end.push(seen.ended[&id].saturating_duration_since(t0));
    }
    if to_running.len() != n {
        println!(
            "note: {} of {n} jobs had no `running` event seen (reported straight to their end)",
            n - to_running.len()
        );
    }
    (stats(to_running), stats(to_end), wall)
}

async fn wait_for_end(seen: &Arc<Mutex<Seen>>, id: JobId) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if seen.lock().expect("lock").ended.contains_key(&id) {
            return;
        }
        assert!(Instant::now() < deadline, "job {id} did not end within 60s");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("REEF_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let a = ReefProcess::agent(&nats.url, dir.path(), "a", &["--label", "sandbox=on"]);
    let b = ReefProcess::agent(&nats.url, dir.path(), "b", &["--label", "sandbox=on"]);
    let off = ["--label", "sandbox=off", "--sandbox", "off"];
    let c = ReefProcess::agent(&nats.url, dir.path(), "c", &off);
    let d = ReefProcess::agent(&nats.url, dir.path(), "d", &off);
    Cli::new(&nats.url).wait_for_nodes(4).await;

    let client = nats.url.connect().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut events = client.subscribe("reef.events.>").await.expect("subscribe");
    let recorder_seen = seen.clone();
    let recorder = tokio::spawn(async move {
        while let Some(msg) = events.next().await {
            let at = Instant::now();
            let Ok(event) = decode::<AllocEvent>(&msg.payload) else {
                continue;
            };
            let mut seen = recorder_seen.lock().expect("lock");
            match event.state {
                AllocState::Running { .. } => {
                    seen.running.entry(event.job).or_insert(at);
                }
                state if state.is_terminal() => {
                    seen.ended.entry(event.job).or_insert(at);
                }
                _ => {}
            }
        }
    });

    // Warm up connections, caches and the page cache.
    reef_jobs(&client, &seen, 20, 1, "on").await;
    reef_jobs(&client, &seen, 20, 1, "off").await;

    println!("reef dispatch benchmark: {n} jobs (`true`), 2 agents with the sandbox and 2 without, 1 coordinator, 1 nats-server, release build");
    let spawn = local_spawn(n).await;
    let rtt = nats_rtt(&client, n).await;
    let (seq_run, seq_end, seq_wall) = reef_jobs(&client, &seen, n, 1, "on").await;
    let (burst_run, burst_end, burst_wall) = reef_jobs(&client, &seen, n, 16, "on").await;
    let (bare_run, bare_end, _) = reef_jobs(&client, &seen, n, 1, "off").await;
    recorder.abort();
    for agent in [&a, &b, &c, &d] {
        for line in agent
            .log_text()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        {
            println!("agent log: {line}");
        }
    }

    row("baseline: local spawn of `true` (spawn→exit)", &spawn);
    row("baseline: NATS request/reply round trip", &rtt);
    row(
        "reef --sandbox off, one at a time: submit → running",
        &bare_run,
    );
    row(
        "reef --sandbox off, one at a time: submit → exit",
        &bare_end,
    );
    row("reef, one at a time: submit → running", &seq_run);
    row("reef, one at a time: submit → exit reported", &seq_end);
    row("reef, burst: submit → running (incl. queueing)", &burst_run);
    row(
        "reef, burst: submit → exit reported (incl. queueing)",
        &burst_end,
    );
    println!(
        "throughput: {:.0} jobs/s one at a time, {:.0} jobs/s as a burst",
        n as f64 / seq_wall.as_secs_f64(),
        n as f64 / burst_wall.as_secs_f64()
    );
    println!(
        "ratios (reef one at a time, submit→exit reported / baseline): {:.1}x local spawn, {:.1}x NATS round trip (p50)",
        ms(seq_end.p50) / ms(spawn.p50).max(f64::EPSILON),
        ms(seq_end.p50) / ms(rtt.p50).max(f64::EPSILON)
    );
    println!(
        "the sandbox adds (p50, one at a time): {:+.2} ms to submit → running, {:+.2} ms to submit → exit reported (target: at most 5 ms to running): {}",
        ms(seq_run.p50) - ms(bare_run.p50),
        ms(seq_end.p50) - ms(bare_end.p50),
        if seq_run.p50 <= bare_run.p50 + Duration::from_millis(5) { "met" } else { "NOT met" }
    );
    println!(
        "target: p50 < 20 ms, p99 < 100 ms (submit → exit reported): {}",
        if seq_end.p50 < Duration::from_millis(20) && seq_end.p99 < Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );
}
