//! The proxy as users run it: real `reef agent` processes (release build,
//! their default settings: metrics on, routes from the cluster, the
//! sandbox, the daemon's default logging), an app deployed with `reef deploy`, next to nginx and HAProxy
//! proxying to the same instance, configured as a careful operator would
//! (workers or threads = cores, keep-alive to the backend, forwarding
//! headers), all measured in the same run with the same load generators.
//!
//! The app is `bench-backend` (this package's binary: `hello, world\n` over
//! HTTP/1.1 keep-alive), deployed on node-1 (label `role=app`); node-2 runs
//! no instance. Parts:
//!
//! 1. HTTP/1.1, wrk: the instance directly (the baseline), node-1's agent,
//!    nginx, HAProxy; interleaved rounds after a warm-up each.
//! 2. HTTP/2 with prior knowledge, h2load at 1 and 10 streams per
//!    connection: node-1's agent, nginx, HAProxy.
//! 3. Cross-node: wrk → node-2's agent → node-1's peer listener (mutual TLS,
//!    as the agents run it) → the instance, next to nginx and HAProxy each
//!    doing the same two hops (plain, keep-alive to the next hop).
//!
//! CPU per request is read from `/proc`: an agent's own process (not the
//! instance it runs), nginx's and HAProxy's whole process trees, and both
//! hops together for the cross-node part.
//!
//! Run with `scripts/bench.sh`, or `cargo build --release --bin reef &&
//! cargo bench -p reef-tests --bench deployed`. Settings as in the library
//! bench: `REEF_BENCH_WRK_THREADS` (2), `REEF_BENCH_WRK_CONNECTIONS` (64),
//! `REEF_BENCH_SECONDS` (10), `REEF_BENCH_ROUNDS` (3), `REEF_BENCH_QUICK=1`
//! (2 s, one round), `REEF_BENCH_ONLY=http1|http2|cross` for one part.

#![forbid(unsafe_code)]

#[allow(dead_code)]
#[path = "../../proxy/benches/vs_nginx/configs.rs"]
mod configs;
#[allow(dead_code)]
#[path = "../../proxy/benches/vs_nginx/cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "../../proxy/benches/vs_nginx/h2load.rs"]
mod h2load;
#[allow(dead_code)]
#[path = "../../proxy/benches/vs_nginx/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "../../proxy/benches/vs_nginx/wrk.rs"]
mod wrk;

use anyhow::{bail, Context as _};
use reef_tests::TestCluster;
use report::{CpuReading, H2Sample, H2Target, Sample, Target};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The host the app serves and every request carries.
pub(crate) const HOST: &str = "bench.local";

/// One proxy (or the backend) as the bench measures it: where it listens
/// and how its CPU time is read.
struct Measured {
    name: &'static str,
    port: u16,
    h2_port: Option<u16>,
    /// The processes whose CPU time is the proxy's, and whether each is
    /// counted with its children.
    cpu: Vec<(u32, bool)>,
}

impl Measured {
    fn cpu(&self) -> Option<Duration> {
        self.cpu
            .iter()
            .map(|&(pid, tree)| match tree {
                true => cpu::process_tree(pid),
                false => cpu::process(pid),
            })
            .sum()
    }
}

/// A peer server run as a child; killed on drop.
struct Peer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    reef_tests::wait::free_port()
}

fn wait_listening(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} does not listen on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn nginx(port: u16, h2_port: u16, upstream: u16) -> anyhow::Result<Peer> {
    let dir = tempfile::tempdir()?;
    let conf = configs::nginx(dir.path(), port, h2_port, upstream)?;
    std::fs::write(dir.path().join("nginx.conf"), conf)?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    wait_listening(port, "nginx")?;
    Ok(Peer { child, _dir: dir })
}

/// HAProxy as an operator would run it in front of one backend: one thread
/// per core, keep-alive to the server and connections reused across
/// clients (`http-reuse always`), the forwarding headers reef and nginx
/// set, no logs.
fn haproxy(port: u16, h2_port: u16, upstream: u16) -> anyhow::Result<Peer> {
    let dir = tempfile::tempdir()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let conf = format!(
        "global\n    nbthread {threads}\n    maxconn 4096\n\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n    timeout http-keep-alive 60s\n    option http-keep-alive\n    http-reuse always\n\nfrontend bench\n    bind 127.0.0.1:{port}\n    bind 127.0.0.1:{h2_port} proto h2\n    option forwardfor\n    http-request set-header X-Forwarded-Proto http\n    http-request set-header X-Forwarded-Host %[req.hdr(host)]\n    default_backend app\n\nbackend app\n    server instance 127.0.0.1:{upstream}\n"
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting haproxy")?;
    wait_listening(port, "haproxy")?;
    Ok(Peer { child, _dir: dir })
}

struct Settings {
    load: wrk::Load,
    warm_up: Duration,
    rounds: usize,
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={text:?} is not a number")),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let quick = std::env::var("REEF_BENCH_QUICK").is_ok_and(|v| v == "1");
        let (seconds, rounds, warm_up) = if quick { (2, 1, 1) } else { (10, 3, 2) };
        Ok(Self {
            load: wrk::Load {
                threads: env_number("REEF_BENCH_WRK_THREADS", 2)?,
                connections: env_number("REEF_BENCH_WRK_CONNECTIONS", 64)?,
                duration: Duration::from_secs(env_number("REEF_BENCH_SECONDS", seconds)?),
            },
            warm_up: Duration::from_secs(warm_up),
            rounds: env_number("REEF_BENCH_ROUNDS", rounds)?.max(1),
        })
    }
}

/// wrk against each target in interleaved rounds; false if a run had errors.
fn http1(
    settings: &Settings,
    measured: &[&Measured],
    backend: &Measured,
) -> anyhow::Result<(Vec<Target>, bool)> {
    let mut targets: Vec<Target> = measured
        .iter()
        .map(|m| Target::new(m.name, m.port))
        .collect();
    let warm = wrk::Load {
        duration: settings.warm_up,
        ..settings.load
    };
    for m in measured {
        wrk::run(&warm, m.port)?;
    }
    let mut clean = true;
    for round in 1..=settings.rounds {
        for (m, target) in measured.iter().zip(targets.iter_mut()) {
            let reading = || -> CpuReading {
                let proxy = (m.name != backend.name).then(|| m.cpu()).flatten();
                (backend.cpu(), proxy)
            };
            let before = reading();
            let run = wrk::run(&settings.load, m.port)?;
            let after = reading();
            let sample = Sample::new(run, before, after);
            println!("round {round} {:<22} {sample}", m.name);
            clean &= sample.errors.is_empty();
            target.samples.push(sample);
        }
    }
    Ok((targets, clean))
}

fn http2(settings: &Settings, measured: &[&Measured]) -> anyhow::Result<(Vec<H2Target>, bool)> {
    let mut targets = Vec::new();
    let mut clean = true;
    for streams in [1, 10] {
        let load = h2load::H2Load {
            threads: settings.load.threads,
            connections: settings.load.connections,
            streams,
            duration: settings.load.duration,
        };
        let warm = h2load::H2Load {
            duration: settings.warm_up,
            ..load
        };
        let mut round_targets: Vec<H2Target> = measured
            .iter()
            .map(|m| H2Target::new(m.name, streams))
            .collect();
        for m in measured {
            h2load::run(&warm, m.h2_port.context("an HTTP/2 port")?)?;
        }
        for round in 1..=settings.rounds {
            for (m, target) in measured.iter().zip(round_targets.iter_mut()) {
                let before = m.cpu();
                let run = h2load::run(&load, m.h2_port.context("an HTTP/2 port")?)?;
                let after = m.cpu();
                let sample = H2Sample::new(run, before, after);
                println!(
                    "round {round} {:<22} {streams:>2} streams  {sample}",
                    m.name
                );
                clean &= sample.failed == 0;
                target.samples.push(sample);
            }
        }
        targets.extend(round_targets);
    }
    Ok((targets, clean))
}

fn write_app(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::copy(env!("CARGO_BIN_EXE_bench-backend"), dir.join("backend"))
        .context("copying bench-backend")?;
    std::fs::write(
        dir.join("Reef.toml"),
        format!("[app]\nname = \"bench\"\ndomains = [\"{HOST}\"]\n\n[deploy]\nbinary = \"backend\"\nhealth = \"/\"\n\n[placement]\nlabels = {{ role = \"app\" }}\n"),
    )?;
    Ok(())
}

fn version(tool: &str, args: &[&str]) -> String {
    Command::new(tool)
        .args(args)
        .output()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|_| "?".into())
}

async fn run() -> anyhow::Result<bool> {
    for tool in ["wrk", "nginx", "haproxy", "h2load"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            bail!("{tool} is not installed: scripts/bench.sh installs it");
        }
    }
    let settings = Settings::from_env()?;
    println!(
        "{} | {} | cores: {}",
        version("nginx", &["-v"]),
        version("haproxy", &["-v"]),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut cluster = TestCluster::start_with(2, &[], |i| match i {
        1 => vec!["--label".into(), "role=app".into()],
        _ => Vec::new(),
    })
    .await;
    // The agents log as they do by default, not at the tests' debug level.
    for agent in &mut cluster.agents {
        agent.restart_with_default_logging();
    }
    cluster.wait_ready(2).await;
    let app: PathBuf = cluster.dir.path().join("bench-app");
    write_app(&app)?;
    cluster.deploy(&app).await;
    cluster.healthy_nodes("bench", 1).await;
    let status = cluster.cli.ok(&["status", "bench", "--json"]).await.json();
    let instance = &status["instances"][0];
    let backend_port = instance["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .context("the instance's port")?;
    let instance_id = instance["id"].as_str().context("the instance's id")?;
    anyhow::ensure!(
        instance["node_name"] == "node-1",
        "the instance is on node-1: {instance}"
    );
    let backend_pids: Vec<u32> =
        reef_tests::process::pids_with_env("REEF_INSTANCE_ID", instance_id)
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
    let agent_pid = |name: &str| cluster.agent(name).pid().context("the agent's pid");

    let backend = Measured {
        name: "backend (direct)",
        port: backend_port,
        h2_port: None,
        cpu: backend_pids.iter().map(|&p| (p, true)).collect(),
    };
    let agent = Measured {
        name: "reef agent",
        port: cluster.proxy_port("node-1"),
        h2_port: Some(cluster.proxy_port("node-1")),
        cpu: vec![(agent_pid("node-1")?, false)],
    };
    let (nginx_port, nginx_h2) = (free_port(), free_port());
    let nginx_peer = nginx(nginx_port, nginx_h2, backend_port)?;
    let nginx_m = Measured {
        name: "nginx",
        port: nginx_port,
        h2_port: Some(nginx_h2),
        cpu: vec![(nginx_peer.child.id(), true)],
    };
    let (haproxy_port, haproxy_h2) = (free_port(), free_port());
    let haproxy_peer = haproxy(haproxy_port, haproxy_h2, backend_port)?;
    let haproxy_m = Measured {
        name: "haproxy",
        port: haproxy_port,
        h2_port: Some(haproxy_h2),
        cpu: vec![(haproxy_peer.child.id(), true)],
    };
    let mut clean = true;
    let only = std::env::var("REEF_BENCH_ONLY").ok();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);

    if part("http1") {
        println!();
        println!(
            "HTTP/1.1: wrk -t{} -c{} -d{}s, {} rounds",
            settings.load.threads,
            settings.load.connections,
            settings.load.duration.as_secs(),
            settings.rounds
        );
        let (targets, ok) = tokio::task::block_in_place(|| {
            http1(
                &settings,
                &[&backend, &agent, &nginx_m, &haproxy_m],
                &backend,
            )
        })?;
        clean &= ok;
        println!();
        report::print(&targets);
    }

    if part("http2") {
        println!();
        println!(
            "HTTP/2 with prior knowledge: h2load --threads={} --clients={}, {} s, {} rounds",
            settings.load.threads,
            settings.load.connections,
            settings.load.duration.as_secs(),
            settings.rounds
        );
        let (h2_targets, ok) =
            tokio::task::block_in_place(|| http2(&settings, &[&agent, &nginx_m, &haproxy_m]))?;
        clean &= ok;
        println!();
        report::print_h2(&h2_targets);
    }
    drop(nginx_peer);
    drop(haproxy_peer);
    if !part("cross") {
        return Ok(clean);
    }

    // Cross-node: node-2 has no instance and forwards to node-1.
    let cross = Measured {
        name: "reef agent, 2 nodes",
        port: cluster.proxy_port("node-2"),
        h2_port: None,
        cpu: vec![(agent_pid("node-2")?, false), (agent_pid("node-1")?, false)],
    };
    let (back_port, back_h2) = (free_port(), free_port());
    let nginx_back = nginx(back_port, back_h2, backend_port)?;
    let (front_port, front_h2) = (free_port(), free_port());
    let nginx_front = nginx(front_port, front_h2, back_port)?;
    let nginx_hops = Measured {
        name: "nginx",
        port: front_port,
        h2_port: None,
        cpu: vec![
            (nginx_front.child.id(), true),
            (nginx_back.child.id(), true),
        ],
    };
    let (hback_port, hback_h2) = (free_port(), free_port());
    let haproxy_back = haproxy(hback_port, hback_h2, backend_port)?;
    let (hfront_port, hfront_h2) = (free_port(), free_port());
    let haproxy_front = haproxy(hfront_port, hfront_h2, hback_port)?;
    let haproxy_hops = Measured {
        name: "haproxy",
        port: hfront_port,
        h2_port: None,
        cpu: vec![
            (haproxy_front.child.id(), true),
            (haproxy_back.child.id(), true),
        ],
    };
    println!();
    println!("Cross-node: wrk → a node without the app → the node with it (mutual TLS) → the instance; nginx and haproxy: two hops each, plain");
    let (cross_targets, ok) = tokio::task::block_in_place(|| {
        http1(
            &settings,
            &[&backend, &cross, &nginx_hops, &haproxy_hops],
            &backend,
        )
    })?;
    clean &= ok;
    println!();
    report::print(&cross_targets);
    Ok(clean)
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("a run had errors: its numbers are not valid");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
