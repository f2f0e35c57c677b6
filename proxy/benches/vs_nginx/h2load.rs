//! One `h2load` run against a target speaking HTTP/2 over plain TCP (h2c
//! with prior knowledge), and what its report says: requests per second,
//! requests that succeeded, and any that did not. h2load gives no
//! percentiles, so the HTTP/2 part of the bench compares throughput and CPU
//! per request only.

use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::HOST;

/// How hard and how long h2load pushes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct H2Load {
    pub(crate) threads: u32,
    pub(crate) connections: u32,
    /// Concurrent streams per connection.
    pub(crate) streams: u32,
    pub(crate) duration: Duration,
}

/// What one run measured.
#[derive(Debug)]
pub(crate) struct H2Output {
    pub(crate) requests_per_sec: f64,
    /// Requests answered with a 2xx.
    pub(crate) succeeded: u64,
    /// Requests that failed, errored, timed out or got another status.
    pub(crate) failed: u64,
}

/// Runs h2load against `http://127.0.0.1:port/` for the bench's host.
pub(crate) fn run(load: &H2Load, port: u16) -> anyhow::Result<H2Output> {
    let url = format!("http://127.0.0.1:{port}/");
    let output = Command::new("h2load")
        .arg(format!("--threads={}", load.threads))
        .arg(format!("--clients={}", load.connections))
        .arg(format!("--max-concurrent-streams={}", load.streams))
        .arg(format!("--duration={}", load.duration.as_secs().max(1)))
        .args(["--header", &format!(":authority: {HOST}")])
        .arg(&url)
        .output()
        .context("run h2load")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "h2load {url} failed ({}): {}{}",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&stdout).with_context(|| format!("could not read h2load's report for {url}:\n{stdout}"))
}

/// Reads h2load's report: `finished in 10.00s, 12345.60 req/s, ...`,
/// `requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout`
/// and `status codes: N 2xx, N 3xx, N 4xx, N 5xx`.
fn parse(report: &str) -> anyhow::Result<H2Output> {
    let mut requests_per_sec = None;
    let mut counts = None;
    let mut not_2xx = 0;
    for line in report.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            let rate = rest
                .split(',')
                .nth(1)
                .and_then(|part| part.trim().strip_suffix(" req/s"))
                .context("no req/s after `finished in`")?;
            requests_per_sec = Some(rate.trim().parse::<f64>().context("req/s")?);
        } else if let Some(rest) = line.strip_prefix("requests:") {
            counts = Some(named_counts(rest)?);
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            for (count, class) in named_counts(rest)? {
                if class != "2xx" {
                    not_2xx += count;
                }
            }
        }
    }
    let counts = counts.context("no `requests:` line")?;
    let count = |name: &str| {
        counts
            .iter()
            .find(|(_, n)| n == name)
            .map_or(0, |(count, _)| *count)
    };
    Ok(H2Output {
        requests_per_sec: requests_per_sec.context("no `finished in` line")?,
        succeeded: count("succeeded").saturating_sub(not_2xx),
        failed: count("failed") + count("errored") + count("timeout") + not_2xx,
    })
}

/// `N name, N name, ...` as (N, name) pairs.
fn named_counts(text: &str) -> anyhow::Result<Vec<(u64, String)>> {
    text.split(',')
        .map(|part| {
            let mut words = part.split_whitespace();
            let count = words
                .next()
                .context("an empty count")?
                .parse()
                .with_context(|| format!("count in {part:?}"))?;
            Ok((count, words.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}
