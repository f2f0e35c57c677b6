//! A client that sends requests to one proxy without pause, for tests that
//! assert no request fails while something changes behind it.

use crate::http;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sends `GET /` with one Host header until finished, recording failures,
/// the versions seen (the first word of each body) and the longest time
/// without a success.
pub struct Prober {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<Duration>,
}

/// What a prober saw, once finished.
#[derive(Debug)]
pub struct Probed {
    pub ok: u64,
    pub failed: u64,
    /// The longest time between two successes.
    pub longest_gap: Duration,
    /// Versions in the order they were first seen, consecutive repeats folded.
    pub seen: Vec<String>,
}

impl Prober {
    /// Starts probing `127.0.0.1:port` with `Host: host`.
    pub fn start(port: u16, host: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let task = {
            let (stop, ok, failed, seen) = (stop.clone(), ok.clone(), failed.clone(), seen.clone());
            let host = host.to_string();
            tokio::spawn(async move {
                let mut last_ok = Instant::now();
                let mut longest_gap = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    match http::get(port, &host, "/").await {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            longest_gap = longest_gap.max(last_ok.elapsed());
                            last_ok = Instant::now();
                            let version =
                                r.body.split_whitespace().next().unwrap_or("").to_string();
                            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                            if seen.last() != Some(&version) {
                                seen.push(version);
                            }
                        }
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("failed request to port {port}: {other:?}");
                        }
                    }
                }
                longest_gap
            })
        };
        Self {
            stop,
            ok,
            failed,
            seen,
            task,
        }
    }

    /// Successful requests so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Versions seen so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops probing and reports.
    pub async fn finish(self) -> Probed {
        self.stop.store(true, Ordering::Relaxed);
        let longest_gap = self.task.await.expect("prober task");
        Probed {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            longest_gap,
            seen: self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}
