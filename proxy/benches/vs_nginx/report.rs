//! The numbers: one [`Sample`] per run, and per target the medians over the
//! rounds, printed as a table with the ratios between the proxies and to the
//! direct backend.

use std::fmt;
use std::time::Duration;

use crate::wrk::{Errors, Output};

/// A server measured, and its runs.
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) port: u16,
    pub(crate) samples: Vec<Sample>,
}

impl Target {
    pub(crate) fn new(name: &'static str, port: u16) -> Self {
        Self {
            name,
            port,
            samples: Vec::new(),
        }
    }

    fn requests_per_sec(&self) -> f64 {
        median(self.samples.iter().map(|s| s.requests_per_sec))
    }

    fn p99_ms(&self) -> f64 {
        median(self.samples.iter().map(|s| s.p99.as_secs_f64() * 1e3))
    }

    fn proxy_cpu(&self) -> Option<f64> {
        median_of_some(self.samples.iter().map(|s| s.proxy_cpu_us))
    }

    fn backend_cpu(&self) -> Option<f64> {
        median_of_some(self.samples.iter().map(|s| s.backend_cpu_us))
    }
}

/// One wrk run against one target.
pub(crate) struct Sample {
    pub(crate) requests_per_sec: f64,
    pub(crate) p99: Duration,
    /// CPU time the proxy's processes used per request, in µs (none for the direct backend).
    pub(crate) proxy_cpu_us: Option<f64>,
    /// CPU time the backend used per request, in µs.
    pub(crate) backend_cpu_us: Option<f64>,
    pub(crate) errors: Errors,
}

/// CPU times of (backend, proxy) read before or after a run.
pub(crate) type CpuReading = (Option<Duration>, Option<Duration>);

impl Sample {
    pub(crate) fn new(run: Output, before: CpuReading, after: CpuReading) -> Self {
        let per_request = |before: Option<Duration>, after: Option<Duration>| {
            let used = after?.checked_sub(before?)?;
            (run.requests > 0).then(|| used.as_secs_f64() * 1e6 / run.requests as f64)
        };
        Self {
            requests_per_sec: run.requests_per_sec,
            p99: run.p99,
            proxy_cpu_us: per_request(before.1, after.1),
            backend_cpu_us: per_request(before.0, after.0),
            errors: run.errors,
        }
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>8.0} req/s   p99 {:>6.2} ms   CPU per request: proxy {}, backend {}",
            self.requests_per_sec,
            self.p99.as_secs_f64() * 1e3,
            micros(self.proxy_cpu_us),
            micros(self.backend_cpu_us),
        )?;
        if !self.errors.is_empty() {
            write!(f, "   ERR {}", self.errors)?;
        }
        Ok(())
    }
}

/// Prints the table of medians and the ratios.
pub(crate) fn print(targets: &[Target]) {
    print_table(targets);
    print_ratios(targets);
}

/// The cross-node part: the table, then the encrypted link against the
/// plain one and against nginx's two hops.
pub(crate) fn print_forwarding(targets: &[Target], plain: &str, mtls: &str, nginx: &str) {
    print_table(targets);
    let find = |name: &str| targets.iter().find(|t| t.name == name);
    let (Some(plain), Some(mtls), Some(nginx)) = (find(plain), find(mtls), find(nginx)) else {
        return;
    };
    println!();
    for (ours, theirs) in [(mtls, plain), (mtls, nginx), (plain, nginx)] {
        println!(
            "{:>16} / {:<16}: {}",
            ours.name,
            theirs.name,
            ratios(ours, theirs)
        );
    }
}

/// Throughput, p99 and CPU per request of `ours` over `theirs`.
pub(crate) fn ratios(ours: &Target, theirs: &Target) -> String {
    let cpu = match (ours.proxy_cpu(), theirs.proxy_cpu()) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => format!("{:.2}x", ours / theirs),
        _ => "-".to_owned(),
    };
    format!(
        "throughput {:.2}x, p99 {:.2}x, CPU per request {cpu}",
        ours.requests_per_sec() / theirs.requests_per_sec(),
        ours.p99_ms() / theirs.p99_ms(),
    )
}

fn print_table(targets: &[Target]) {
    println!(
        "{:<20} {:>9} {:>9} {:>16} {:>18}   req/s per round",
        "target (median)", "req/s", "p99 ms", "proxy CPU/req", "backend CPU/req"
    );
    for target in targets {
        let rounds: Vec<String> = target
            .samples
            .iter()
            .map(|s| format!("{:.0}", s.requests_per_sec))
            .collect();
        println!(
            "{:<20} {:>9.0} {:>9.2} {:>16} {:>18}   {}",
            target.name,
            target.requests_per_sec(),
            target.p99_ms(),
            micros(target.proxy_cpu()),
            micros(target.backend_cpu()),
            rounds.join(", ")
        );
    }
}

fn print_ratios(targets: &[Target]) {
    let Some(backend) = targets.first() else {
        return;
    };
    println!();
    let peers = || targets.iter().filter(|t| PEERS.contains(&t.name));
    for ours in targets.iter().filter(|t| t.name.starts_with("reef")) {
        for peer in peers() {
            println!(
                "{:>13} / {:<5}: {}",
                ours.name,
                peer.name,
                ratios(ours, peer)
            );
        }
    }
    let fractions: Vec<String> = targets[1..]
        .iter()
        .map(|t| {
            format!(
                "{} {:.2}",
                t.name,
                t.requests_per_sec() / backend.requests_per_sec()
            )
        })
        .collect();
    println!(
        "throughput as a fraction of the direct backend's: {}",
        fractions.join(", ")
    );
}

/// The servers reef is compared with, by target name.
const PEERS: [&str; 3] = ["nginx", "caddy", "haproxy"];

fn micros(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |us| format!("{us:.1} µs"))
}

/// The median (the mean of the middle two for an even count); NaN for none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn median_of_some(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let values: Option<Vec<f64>> = values.collect();
    values
        .filter(|v| !v.is_empty())
        .map(|v| median(v.into_iter()))
}

/// A server measured over HTTP/2 at one number of streams per connection.
pub(crate) struct H2Target {
    pub(crate) name: &'static str,
    pub(crate) streams: u32,
    pub(crate) samples: Vec<H2Sample>,
}

impl H2Target {
    pub(crate) fn new(name: &'static str, streams: u32) -> Self {
        Self {
            name,
            streams,
            samples: Vec::new(),
        }
    }

    fn requests_per_sec(&self) -> f64 {
        median(self.samples.iter().map(|s| s.requests_per_sec))
    }

    fn proxy_cpu(&self) -> Option<f64> {
        median_of_some(self.samples.iter().map(|s| s.proxy_cpu_us))
    }
}

/// One h2load run against one target.
pub(crate) struct H2Sample {
    pub(crate) requests_per_sec: f64,
    pub(crate) proxy_cpu_us: Option<f64>,
    pub(crate) failed: u64,
}

impl H2Sample {
    pub(crate) fn new(
        run: crate::h2load::H2Output,
        before: Option<Duration>,
        after: Option<Duration>,
    ) -> Self {
        let proxy_cpu_us = after
            .zip(before)
            .and_then(|(after, before)| after.checked_sub(before))
            .filter(|_| run.succeeded > 0)
            .map(|used| used.as_secs_f64() * 1e6 / run.succeeded as f64);
        Self {
            requests_per_sec: run.requests_per_sec,
            proxy_cpu_us,
            failed: run.failed,
        }
    }
}

impl fmt::Display for H2Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>8.0} req/s   CPU per request: {}",
            self.requests_per_sec,
            micros(self.proxy_cpu_us)
        )?;
        if self.failed > 0 {
            write!(f, "   ERR {} requests failed", self.failed)?;
        }
        Ok(())
    }
}

/// Prints the HTTP/2 medians and reef's ratios to nginx at each stream count.
pub(crate) fn print_h2(targets: &[H2Target]) {
    println!(
        "{:<18} {:>8} {:>9} {:>16}   req/s per round",
        "HTTP/2 (median)", "streams", "req/s", "proxy CPU/req"
    );
    for target in targets {
        let rounds: Vec<String> = target
            .samples
            .iter()
            .map(|s| format!("{:.0}", s.requests_per_sec))
            .collect();
        println!(
            "{:<18} {:>8} {:>9.0} {:>16}   {}",
            target.name,
            target.streams,
            target.requests_per_sec(),
            micros(target.proxy_cpu()),
            rounds.join(", ")
        );
    }
    println!();
    for ours in targets.iter().filter(|t| t.name.starts_with("reef")) {
        let peers = targets
            .iter()
            .filter(|t| PEERS.contains(&t.name) && t.streams == ours.streams);
        for peer in peers {
            println!(
                "{} / {}, HTTP/2, {:>2} streams per connection: throughput {:.2}x, CPU per request {}",
                ours.name,
                peer.name,
                ours.streams,
                ours.requests_per_sec() / peer.requests_per_sec(),
                match (ours.proxy_cpu(), peer.proxy_cpu()) {
                    (Some(ours), Some(theirs)) if theirs > 0.0 => format!("{:.2}x", ours / theirs),
                    _ => "-".to_owned(),
                }
            );
        }
    }
}
