//! Throughput and tail latency of the reef proxy next to nginx and Caddy, all
//! three in front of the same backend and measured in the same run with the
//! same load generator (`wrk`), plus the backend measured directly (the
//! baseline every proxy is a fraction of).
//!
//! Every server is its own process on its own loopback port: the backend (a
//! small hyper server answering `hello, world\n` with keep-alive) and the reef
//! proxy are this binary started again in a server role, so that no server
//! shares a runtime or a process with another or with the bench. reef runs in
//! two layouts: as the node agent runs it (one multi-threaded runtime), and
//! with one current-thread runtime per core (`reef-per-core`, see `roles`).
//! The targets are measured in interleaved rounds (backend, reef,
//! reef-per-core, nginx, caddy, then again), after a short warm-up each, and
//! the report gives per-target medians, the CPU time each server process used
//! per request, and the ratios.
//!
//! Run with `scripts/bench.sh` or `cargo bench -p reef-proxy --bench
//! vs_nginx`. Needs `nginx`, `caddy` and `wrk` on PATH. Settings (env):
//! `REEF_BENCH_WRK_THREADS` (2), `REEF_BENCH_WRK_CONNECTIONS` (64),
//! `REEF_BENCH_SECONDS` per run (10), `REEF_BENCH_ROUNDS` (3), and
//! `REEF_BENCH_QUICK=1` (or `-- --quick`) for a quick check: 2 s runs, one
//! round.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod configs;
mod cpu;
mod peers;
mod report;
mod roles;
mod wrk;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::peers::Server;
use crate::report::{Sample, Target};
use crate::wrk::Load;

/// The Host every request carries; the only host the proxies route.
pub(crate) const HOST: &str = "bench.local";

/// What the backend answers to every request.
pub(crate) const BODY: &[u8] = b"hello, world\n";

/// The tools the bench drives, with the Debian package each comes from.
const TOOLS: [(&str, &str); 3] = [("nginx", "nginx-light"), ("caddy", "caddy"), ("wrk", "wrk")];

/// How the load is applied and how many times.
struct Settings {
    load: Load,
    warm_up: Duration,
    rounds: usize,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let quick = std::env::args().any(|arg| arg == "--quick")
            || std::env::var("REEF_BENCH_QUICK").is_ok_and(|v| v == "1");
        let (seconds, rounds, warm_up) = if quick { (2, 1, 1) } else { (10, 3, 2) };
        let load = Load {
            threads: env_number("REEF_BENCH_WRK_THREADS", 2)?,
            connections: env_number("REEF_BENCH_WRK_CONNECTIONS", 64)?,
            duration: Duration::from_secs(env_number("REEF_BENCH_SECONDS", seconds)?),
        };
        anyhow::ensure!(
            load.threads >= 1 && load.connections >= load.threads && !load.duration.is_zero(),
            "wrk needs at least one thread, at least one connection per thread and a duration"
        );
        Ok(Self {
            load,
            warm_up: Duration::from_secs(warm_up),
            rounds: env_number("REEF_BENCH_ROUNDS", rounds)?.max(1),
        })
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={value:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn main() -> ExitCode {
    if let Some(role) = roles::requested() {
        return roles::run(role);
    }
    let missing: Vec<_> = TOOLS
        .iter()
        .filter(|(tool, _)| !peers::on_path(tool))
        .collect();
    if !missing.is_empty() {
        for (tool, package) in &missing {
            eprintln!(
                "vs_nginx: `{tool}` is not on PATH; install it with `apt-get install {package}`"
            );
        }
        eprintln!("(scripts/bench.sh installs them when they are missing)");
        return ExitCode::from(2);
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "vs_nginx: some runs had errors (marked ERR above); the numbers are not valid"
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("vs_nginx: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Starts everything, measures, reports; false when a run had errors.
fn run() -> anyhow::Result<bool> {
    let settings = Settings::from_env()?;
    let dir = tempfile::tempdir().context("create a temp dir")?;
    let backend = Server::backend(dir.path())?;
    let upstream = backend.port();
    let servers = [
        Server::reef(dir.path(), upstream)?,
        Server::reef_per_core(dir.path(), upstream)?,
        Server::nginx(dir.path(), upstream)?,
        Server::caddy(dir.path(), upstream)?,
    ];
    let mut targets = vec![Target::new("backend (direct)", backend.port())];
    targets.extend(servers.iter().map(|s| Target::new(s.name(), s.port())));

    let load = &settings.load;
    println!(
        "reef proxy vs nginx and Caddy: wrk -t{} -c{} -d{}s --latency -H 'Host: {HOST}', \
         {} rounds, {} cores; nginx {}, caddy {}",
        load.threads,
        load.connections,
        load.duration.as_secs(),
        settings.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        peers::version("nginx", &["-v"]),
        peers::version("caddy", &["version"]),
    );
    let warm_up = Load {
        duration: settings.warm_up,
        ..*load
    };
    let mut clean = true;
    for target in &targets {
        let result = wrk::run(&warm_up, target.port)?;
        if !result.errors.is_empty() {
            println!("warm-up of {}: ERR {}", target.name, result.errors);
            clean = false;
        }
    }
    for round in 1..=settings.rounds {
        for (index, target) in targets.iter_mut().enumerate() {
            // targets[0] is the backend itself; targets[i] is servers[i - 1].
            let proxy = index.checked_sub(1).map(|i| &servers[i]);
            let before = (backend.cpu(), proxy.and_then(Server::cpu));
            let result = wrk::run(load, target.port)?;
            let after = (backend.cpu(), proxy.and_then(Server::cpu));
            let sample = Sample::new(result, before, after);
            println!("round {round}: {:<18} {sample}", target.name);
            clean &= sample.errors.is_empty();
            target.samples.push(sample);
        }
    }
    println!();
    report::print(&targets);
    for server in std::iter::once(&backend).chain(&servers) {
        server.print_log_warnings();
    }
    Ok(clean)
}
