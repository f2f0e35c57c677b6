//! One `wrk` run against a target, and what its `--latency` report says:
//! requests per second, the 99th percentile latency, and any errors.

use std::fmt;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::HOST;

/// How hard and how long wrk pushes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Load {
    pub(crate) threads: u32,
    pub(crate) connections: u32,
    pub(crate) duration: Duration,
}

/// What one run measured.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) requests_per_sec: f64,
    pub(crate) requests: u64,
    pub(crate) p99: Duration,
    pub(crate) errors: Errors,
}

/// The errors wrk counted; a run with any is not a valid measurement.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    /// Responses with a status other than 2xx or 3xx.
    pub(crate) bad_status: u64,
    /// `Socket errors:` connect, read, write and timeout counts.
    pub(crate) socket: [u64; 4],
}

impl Errors {
    pub(crate) fn is_empty(&self) -> bool {
        self.bad_status == 0 && self.socket.iter().all(|&n| n == 0)
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [connect, read, write, timeout] = self.socket;
        write!(
            f,
            "non-2xx/3xx {}, socket errors: connect {connect}, read {read}, write {write}, timeout {timeout}",
            self.bad_status
        )
    }
}

/// Runs wrk against `http://127.0.0.1:port/` with the bench's Host header.
pub(crate) fn run(load: &Load, port: u16) -> anyhow::Result<Output> {
    let url = format!("http://127.0.0.1:{port}/");
    let output = Command::new("wrk")
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .arg("--latency")
        .args(["-H", &format!("Host: {HOST}")])
        .arg(&url)
        .output()
        .context("run wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "wrk {url} failed ({}): {}{}",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&stdout).with_context(|| format!("could not read wrk's report for {url}:\n{stdout}"))
}

/// Reads wrk's `--latency` report.
fn parse(report: &str) -> anyhow::Result<Output> {
    let mut requests_per_sec = None;
    let mut requests = None;
    let mut p99 = None;
    let mut errors = Errors::default();
    for line in report.lines().map(str::trim) {
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            requests_per_sec = Some(rate.trim().parse().context("Requests/sec")?);
        } else if let Some(latency) = line.strip_prefix("99%") {
            p99 = Some(latency_of(latency.trim())?);
        } else if let Some((count, _)) = line.split_once(" requests in ") {
            requests = Some(count.trim().parse().context("request count")?);
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors.bad_status = count.trim().parse().context("non-2xx count")?;
        } else if let Some(counts) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for (slot, part) in errors.socket.iter_mut().zip(counts.split(',')) {
                let count = part.split_whitespace().nth(1).unwrap_or_default();
                *slot = count.parse().context("socket error count")?;
            }
        }
    }
    Ok(Output {
        requests_per_sec: requests_per_sec.context("no Requests/sec line")?,
        requests: requests.context("no `N requests in` line")?,
        p99: p99.context("no 99% line (was --latency passed?)")?,
        errors,
    })
}

/// A wrk latency such as `812.00us`, `3.25ms` or `1.02s`.
fn latency_of(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("latency {text:?} has no unit"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("latency {text:?}"))?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => anyhow::bail!("latency {text:?} has an unknown unit"),
    };
    Ok(Duration::from_secs_f64(seconds))
}
