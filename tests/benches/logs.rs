//! Log shipping of a chatty job, end to end with real processes (release
//! builds): `reef run -- seq 1 1000000` (6.9 MB in a million lines, every
//! one shipped to the logs stream and printed by `reef run`) against its
//! peer in the same run, the same command writing into a file on the node
//! (`reef run -- sh -c 'seq 1 1000000 > out'`), whose output goes nowhere.
//!
//! Printed per case, medians: the job's runtime (its record's start to its
//! end, which includes shipping the last of its output), the whole `reef
//! run` (submit to exit, every line printed), and the shipping rate in MB/s
//! (output bytes over the job's runtime). The goal is under 1.5 s of
//! runtime. Run with `cargo build --release --bin reef && cargo bench -p
//! reef-tests --bench logs`; `REEF_BENCH_ROUNDS` sets the rounds (default 5).

use reef_tests::{Cli, NatsServer, ReefProcess};
use std::time::{Duration, Instant};

const LINES: u32 = 1_000_000;

struct Round {
    runtime: Duration,
    whole: Duration,
    bytes: usize,
}

/// Runs `command` with `reef run` and reads back its job's record.
async fn round(cli: &Cli, command: &[&str]) -> Round {
    let mut args = vec!["run", "--"];
    args.extend_from_slice(command);
    let started = Instant::now();
    let out = cli.run_with_timeout(&args, Duration::from_secs(300)).await;
    let whole = started.elapsed();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let jobs = cli.ok(&["jobs", "--json", "--limit", "1"]).await.json();
    let job = &jobs[0];
    let ms = |key: &str| job[key].as_u64().unwrap_or_else(|| panic!("{key}: {job}"));
    Round {
        runtime: Duration::from_millis(ms("finished_at_ms") - ms("started_at_ms")),
        whole,
        bytes: out.stdout.len(),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("REEF_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let _agent = ReefProcess::agent(&nats.url, dir.path(), "a", &[]);
    let cli = Cli::new(&nats.url);
    cli.wait_for_nodes(1).await;

    let lines = LINES.to_string();
    let to_file = format!("seq 1 {LINES} > out");
    let cases: [(&str, Vec<&str>); 2] = [
        ("seq, shipped", vec!["seq", "1", &lines]),
        ("seq > file (peer)", vec!["sh", "-c", &to_file]),
    ];
    let expected_bytes: usize = (1..=LINES).map(|i| i.to_string().len() + 1).sum();
    let mut runtimes = Vec::new();
    println!("{rounds} rounds of {LINES} lines ({expected_bytes} bytes) each, medians:");
    println!("| case | job runtime | whole `reef run` | shipped |");
    println!("|---|---|---|---|");
    for (name, command) in &cases {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            samples.push(round(&cli, command).await);
        }
        let bytes = samples[0].bytes;
        let runtime = median(samples.iter().map(|r| r.runtime).collect());
        let whole = median(samples.iter().map(|r| r.whole).collect());
        let rate = if bytes > 0 {
            assert_eq!(bytes, expected_bytes, "every line came back");
            format!("{:.1} MB/s", bytes as f64 / runtime.as_secs_f64() / 1e6)
        } else {
            "nothing".to_string()
        };
        println!("| {name} | {runtime:.2?} | {whole:.2?} | {rate} |");
        runtimes.push(runtime);
    }
    println!(
        "shipped runtime / peer runtime: {:.1}x; goal: shipped runtime under 1.5 s ({})",
        runtimes[0].as_secs_f64() / runtimes[1].as_secs_f64().max(1e-3),
        if runtimes[0] < Duration::from_millis(1500) {
            "met"
        } else {
            "NOT met"
        }
    );
}
