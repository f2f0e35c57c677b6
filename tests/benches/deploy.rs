//! Deploy timings on a real nats-server, coordinator and agent (release
//! builds), for a trivial HTTP app (python3's http.server), next to the time
//! the app itself needs to start, measured in the same run:
//!
//! - baseline: spawn `python3 server.py` directly and poll its health URL
//!   every millisecond until it answers;
//! - for each of N redeploys (a new artifact every time): `reef deploy` start
//!   → instance `preparing` (pack, upload, release recorded, assignment
//!   delivered), `preparing` → `starting` (download, verify, unpack),
//!   `starting` → `healthy` (the app's start and the first passing check),
//!   `healthy` → the first response from the new release through the proxy
//!   (a client polls it continuously), and the whole `reef deploy`.
//!
//! Run with `scripts/bench.sh`, or `cargo build --release --bin reef && cargo
//! bench -p reef-tests --bench deploy`. `REEF_BENCH_DEPLOYS` sets N (default 10).

use futures::StreamExt;
use reef_proto::app::{InstanceEvent, InstanceState};
use reef_tests::{http, Cli, NatsServer, ReefProcess};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVER: &str = r#"import http.server, os
VERSION = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")).read().strip()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = (VERSION + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

fn write_app(dir: &Path, version: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("server.py"), SERVER).expect("server");
    std::fs::write(dir.join("VERSION"), version).expect("version");
    std::fs::write(
        dir.join("Reef.toml"),
        "[app]\nname = \"bench\"\ndomains = [\"bench.test\"]\n[deploy]\ncommand = [\"python3\", \"server.py\"]\nhealth = \"/\"\nhealth_interval = \"10ms\"\ndrain = 1\n",
    )
    .expect("manifest");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The app's own start: spawn it, poll until it answers.
async fn baseline(dir: &Path) -> Duration {
    let port = reef_tests::wait::free_port();
    let t0 = Instant::now();
    let mut child = tokio::process::Command::new("python3")
        .arg("server.py")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn app");
    loop {
        if http::get(port, "x", "/")
            .await
            .is_ok_and(|r| r.status == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = t0.elapsed();
    let _ = child.kill().await;
    took
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("REEF_BENCH_DEPLOYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _coordinator = ReefProcess::coordinator(&nats.url, dir.path(), &[]);
    let agent = ReefProcess::agent(&nats.url, dir.path(), "a", &[]);
    let port = agent.http_port.expect("proxy port");
    Cli::new(&nats.url).wait_for_nodes(1).await;

    // Instance events, by state, as they arrive.
    let client = nats.url.connect().await;
    let events: Arc<Mutex<HashMap<(reef_proto::InstanceId, &'static str), Instant>>> =
        Default::default();
    let mut sub = client.subscribe("reef.events.>").await.expect("subscribe");
    let recorder = {
        let events = events.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let at = Instant::now();
                if let Ok(e) = reef_proto::decode::<InstanceEvent>(&msg.payload) {
                    let state = match e.state {
                        InstanceState::Preparing => "preparing",
                        InstanceState::Starting => "starting",
                        InstanceState::Healthy => "healthy",
                        _ => continue,
                    };
                    events
                        .lock()
                        .expect("lock")
                        .entry((e.instance, state))
                        .or_insert(at);
                }
            }
        })
    };
    // A client polling the proxy, recording when each version first answered.
    let first_seen: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let prober = {
        let first_seen = first_seen.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(r) = http::get(port, "bench.test", "/").await {
                    if r.status == 200 {
                        let at = Instant::now();
                        first_seen
                            .lock()
                            .expect("lock")
                            .entry(r.body.trim().to_string())
                            .or_insert(at);
                    }
                }
            }
        })
    };

    let app = dir.path().join("app");
    write_app(&app, "warmup");
    let mut base = Vec::new();
    for _ in 0..n {
        base.push(baseline(&app).await);
    }
    let deploy = |version: String| {
        let app = app.clone();
        let cli = reef_tests::Cli::new(&nats.url);
        async move {
            write_app(&app, &version);
            let t0 = Instant::now();
            let out = cli
                .command()
                .arg("deploy")
                .arg(&app)
                .output()
                .await
                .expect("reef deploy");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            (t0, Instant::now())
        }
    };
    deploy("v0".into()).await;

    let (mut upload, mut prepare, mut start, mut switch, mut whole) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 1..=n {
        let version = format!("v{i}");
        let (t0, t_end) = deploy(version.clone()).await;
        let instance = {
            // The new release's instance (the old one may still be draining).
            let status = Cli::new(&nats.url)
                .ok(&["status", "bench", "--json"])
                .await
                .json();
            let instances = status["instances"].as_array().expect("instances");
            let new = instances
                .iter()
                .find(|i| i["release"] == status["release"])
                .expect("new instance");
            new["id"].as_str().expect("instance").parse().expect("id")
        };
        let served = loop {
            if let Some(at) = first_seen.lock().expect("lock").get(&version) {
                break *at;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let ev = events.lock().expect("lock").clone();
        let at = |state| ev[&(instance, state)];
        upload.push(at("preparing").saturating_duration_since(t0));
        prepare.push(at("starting").saturating_duration_since(at("preparing")));
        start.push(at("healthy").saturating_duration_since(at("starting")));
        switch.push(served.saturating_duration_since(at("healthy")));
        whole.push(t_end.saturating_duration_since(t0));
    }
    prober.abort();
    recorder.abort();

    let base = median(base);
    let whole_m = median(whole.clone());
    let switch_m = median(switch.clone());
    println!("reef deploy benchmark: {n} redeploys of a python3 http.server app, 1 agent, release build (medians)");
    println!(
        "baseline: the app's own start (spawn → first answer)   {:>8.1} ms",
        ms(base)
    );
    println!(
        "reef deploy start → instance preparing (pack, upload, release, assignment) {:>8.1} ms",
        ms(median(upload))
    );
    println!(
        "preparing → starting (download, verify, unpack)       {:>8.1} ms",
        ms(median(prepare))
    );
    println!(
        "starting → healthy (app start + first passing check)   {:>8.1} ms",
        ms(median(start))
    );
    println!("healthy reported → first response of the new release  {:>8.1} ms (max {:.1} ms; the route is switched before `healthy` is reported)", ms(switch_m), ms(*switch.iter().max().expect("samples")));
    println!(
        "whole `reef deploy`                                    {:>8.1} ms",
        ms(whole_m)
    );
    println!(
        "overhead: whole deploy − the app's own start = {:.1} ms (target < 1000 ms: {}); switch after the first healthy check < 50 ms: {}",
        ms(whole_m.saturating_sub(base)),
        if whole_m.saturating_sub(base) < Duration::from_secs(1) { "met" } else { "NOT met" },
        if switch_m < Duration::from_millis(50) { "met" } else { "NOT met" },
    );
}
