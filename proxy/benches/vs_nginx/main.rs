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
//! A second part does the same for HTTP/2 with prior knowledge (h2c), with
//! `h2load` as the load generator, for reef (per-core layout) and nginx,
//! at one and at ten concurrent streams per connection; it is skipped
//! when `h2load` is not installed.
//!
//! A third part measures a request forwarded between two nodes (wrk → a
//! node without the app → the other node's peer listener → the backend):
//! reef with the peer link in mutual TLS as the agent runs it, the same
//! with the link in plain HTTP, and nginx doing the same two hops.
//! The proxies' CPU per request is both hops' together.
//!
//! Run with `scripts/bench.sh` or `cargo bench -p reef-proxy --bench
//! vs_nginx`. Needs `nginx`, `caddy` and `wrk` on PATH (and `h2load` for
//! the HTTP/2 part). `REEF_BENCH_ONLY=forwarding` runs the third part alone
//! (nginx and wrk only). Settings (env):
//! `REEF_BENCH_WRK_THREADS` (2), `REEF_BENCH_WRK_CONNECTIONS` (64),
//! `REEF_BENCH_SECONDS` per run (10), `REEF_BENCH_ROUNDS` (3), and
//! `REEF_BENCH_QUICK=1` (or `-- --quick`) for a quick check: 2 s runs, one
//! round.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod configs;
mod cpu;
mod h2load;
mod peers;
mod report;
mod roles;
mod wrk;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::h2load::H2Load;
use crate::peers::Server;
use crate::report::{H2Sample, H2Target, Sample, Target};
use crate::roles::Role;
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

/// The HTTP/2 part: h2load against each of `servers` at 1 and 10 streams
/// per connection, in interleaved rounds; false when a run had failures.
fn http2(settings: &Settings, servers: &[&Server]) -> anyhow::Result<bool> {
    println!();
    println!(
        "HTTP/2 with prior knowledge: h2load --threads={} --clients={}, {} s, {} rounds",
        settings.load.threads,
        settings.load.connections,
        settings.load.duration.as_secs(),
        settings.rounds
    );
    let mut clean = true;
    let mut targets = Vec::new();
    for streams in [1, 10] {
        let load = H2Load {
            threads: settings.load.threads,
            connections: settings.load.connections,
            streams,
            duration: settings.load.duration,
        };
        let warm_up = H2Load {
            duration: settings.warm_up,
            ..load
        };
        let mut measured: Vec<H2Target> = servers
            .iter()
            .map(|s| H2Target::new(s.name(), streams))
            .collect();
        for server in servers {
            h2load::run(&warm_up, server.h2_port())?;
        }
        for round in 1..=settings.rounds {
            for (server, target) in servers.iter().zip(&mut measured) {
                let before = server.cpu();
                let result = h2load::run(&load, server.h2_port())?;
                let sample = H2Sample::new(result, before, server.cpu());
                println!(
                    "round {round}: {:<14} {streams:>2} streams  {sample}",
                    server.name()
                );
                clean &= sample.failed == 0;
                target.samples.push(sample);
            }
        }
        targets.extend(measured);
    }
    println!();
    report::print_h2(&targets);
    Ok(clean)
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

/// Whether only the cross-node part is asked for.
fn forwarding_only() -> bool {
    std::env::var("REEF_BENCH_ONLY").is_ok_and(|v| v == "forwarding")
}

fn main() -> ExitCode {
    if let Some(role) = roles::requested() {
        return roles::run(role);
    }
    let only = forwarding_only();
    let missing: Vec<_> = TOOLS
        .iter()
        .filter(|(tool, _)| !(only && *tool == "caddy"))
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
    if forwarding_only() {
        return forwarding(&settings, dir.path(), &backend);
    }
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
    if peers::on_path("h2load") {
        let h2_servers: Vec<&Server> = servers
            .iter()
            .filter(|s| matches!(s.name(), "reef-per-core" | "nginx"))
            .collect();
        clean &= http2(&settings, &h2_servers)?;
    } else {
        println!(
            "\n(HTTP/2 part skipped: `h2load` is not on PATH; apt-get install nghttp2-client)"
        );
    }
    for server in std::iter::once(&backend).chain(&servers) {
        server.print_log_warnings();
    }
    clean &= forwarding(&settings, dir.path(), &backend)?;
    Ok(clean)
}

/// The names of the cross-node targets.
const HOPS_PLAIN: &str = "reef 2 hops, plain";
const HOPS_MTLS: &str = "reef 2 hops, mTLS";
const HOPS_NGINX: &str = "nginx 2 hops";

/// The cross-node part; false when a run had errors.
fn forwarding(
    settings: &Settings,
    dir: &std::path::Path,
    backend: &Server,
) -> anyhow::Result<bool> {
    let tls = dir.join("peer-tls");
    write_peer_certs(&tls)?;
    let upstream = backend.port();
    let peer_plain = Server::reef_node(dir, Role::PeerPlain, upstream, None)?;
    let edge_plain = Server::reef_node(dir, Role::EdgePlain, peer_plain.port(), None)?;
    let peer_tls = Server::reef_node(dir, Role::PeerTls, upstream, Some(&tls))?;
    let edge_tls = Server::reef_node(dir, Role::EdgeTls, peer_tls.port(), Some(&tls))?;
    let nginx_second = Server::nginx_named(dir, "nginx-hop-2", upstream)?;
    let nginx_first = Server::nginx_named(dir, "nginx-hop-1", nginx_second.port())?;
    let hops = [
        (HOPS_PLAIN, &edge_plain, &peer_plain),
        (HOPS_MTLS, &edge_tls, &peer_tls),
        (HOPS_NGINX, &nginx_first, &nginx_second),
    ];
    let load = &settings.load;
    println!();
    println!(
        "cross-node forwarding: wrk -t{} -c{} -d{}s --latency -H 'Host: {HOST}' → a node \
         without the app → the other node → the backend, {} rounds",
        load.threads,
        load.connections,
        load.duration.as_secs(),
        settings.rounds,
    );
    let warm_up = Load {
        duration: settings.warm_up,
        ..*load
    };
    let mut clean = true;
    let mut targets: Vec<Target> = hops
        .iter()
        .map(|(name, edge, _)| Target::new(name, edge.port()))
        .collect();
    let both = |first: &Server, second: &Server| Some(first.cpu()? + second.cpu()?);
    for (name, edge, _) in &hops {
        let result = wrk::run(&warm_up, edge.port())?;
        if !result.errors.is_empty() {
            println!("warm-up of {name}: ERR {}", result.errors);
            clean = false;
        }
    }
    for round in 1..=settings.rounds {
        for ((_, first, second), target) in hops.iter().zip(&mut targets) {
            let before = (backend.cpu(), both(first, second));
            let result = wrk::run(load, target.port)?;
            let after = (backend.cpu(), both(first, second));
            let sample = Sample::new(result, before, after);
            println!("round {round}: {:<20} {sample}", target.name);
            clean &= sample.errors.is_empty();
            target.samples.push(sample);
        }
    }
    println!();
    report::print_forwarding(&targets, HOPS_PLAIN, HOPS_MTLS, HOPS_NGINX);
    for (_, first, second) in &hops {
        first.print_log_warnings();
        second.print_log_warnings();
    }
    Ok(clean)
}

/// A CA and the two nodes' certificates and keys, as `roles` reads them.
fn write_peer_certs(dir: &std::path::Path) -> anyhow::Result<()> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    std::fs::create_dir_all(dir).context("create the certificates' dir")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    std::fs::write(dir.join("ca.pem"), ca.pem()).context("write the CA")?;
    let issuer = Issuer::new(ca_params, ca_key);
    for name in [roles::EDGE_NAME, roles::PEER_NAME] {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec![name.to_owned()])?.signed_by(&key, &issuer)?;
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).context("write a cert")?;
        std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem())
            .context("write a key")?;
    }
    Ok(())
}
