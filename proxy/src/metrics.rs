//! The proxy's metrics, kept in atomics and rendered in the Prometheus text
//! exposition format for the agent's `/metrics` endpoint:
//!
//! - `reef_proxy_requests_total{app,class}`: answered requests by status
//!   class (`1xx` … `5xx`);
//! - `reef_proxy_request_duration_seconds{app}`: a histogram of the time
//!   until the response headers were ready;
//! - `reef_proxy_open_connections`: client connections open now;
//! - `reef_proxy_tls_handshake_failures_total`: TLS handshakes that failed or timed out.
//!
//! Requests no app was found for (unknown host, no Host, ACME challenges)
//! count under `app=""`.

use std::collections::HashMap;
use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use http::StatusCode;

use crate::exposition::{escape_label, Histogram};

/// Status classes, as rendered in `class`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The proxy's counters. Cheap to clone (Arc inside).
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    apps: RwLock<HashMap<String, Arc<AppStats>>>,
    open_connections: AtomicU64,
    handshake_failures: AtomicU64,
}

/// One app's requests.
#[derive(Default)]
struct AppStats {
    by_class: [AtomicU64; 5],
    duration: Histogram,
}

/// One app's answered requests, those answered 5xx, and their latencies
/// added up, since the proxy started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCounts {
    pub app: String,
    pub requests: u64,
    pub errors: u64,
    pub latency_micros: u64,
}

/// Counts one open connection until dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection {
    metrics: Metrics,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics
            .inner
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> u64 {
        self.inner.open_connections.load(Ordering::Relaxed)
    }

    /// Counts one answered request of `app` ("" for none) with `status`,
    /// whose response headers were ready after `latency`.
    pub(crate) fn record(&self, app: &str, status: StatusCode, latency: Duration) {
        let stats = self.stats(app);
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        stats.by_class[class].fetch_add(1, Ordering::Relaxed);
        stats.duration.observe(latency);
    }

    /// Each app's requests since the proxy started (cumulative; requests
    /// for no app left out), the first `max` apps by name: what the agent
    /// tells the coordinators with its heartbeat.
    pub fn traffic(&self, max: usize) -> Vec<AppCounts> {
        let apps = self.inner.apps.read().unwrap_or_else(|e| e.into_inner());
        let mut counts: Vec<AppCounts> = apps
            .iter()
            .filter(|(app, _)| !app.is_empty())
            .map(|(app, stats)| AppCounts {
                app: app.clone(),
                requests: stats.duration.count(),
                errors: stats.by_class[4].load(Ordering::Relaxed),
                latency_micros: stats.duration.sum_micros(),
            })
            .collect();
        counts.sort_by(|a, b| a.app.cmp(&b.app));
        counts.truncate(max);
        counts
    }

    /// Counts a connection as open until the returned guard drops.
    pub(crate) fn connection_opened(&self) -> OpenConnection {
        self.inner.open_connections.fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            metrics: self.clone(),
        }
    }

    /// Counts a TLS handshake that failed.
    pub(crate) fn handshake_failed(&self) {
        self.inner
            .handshake_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Everything, in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut apps: Vec<(String, Arc<AppStats>)> = self
            .inner
            .apps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(app, stats)| (escape_label(app), Arc::clone(stats)))
            .collect();
        apps.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write(&mut out, &apps);
        out
    }

    fn write(&self, out: &mut String, apps: &[(String, Arc<AppStats>)]) -> fmt::Result {
        writeln!(
            out,
            "# HELP reef_proxy_requests_total Requests answered, by app and status class."
        )?;
        writeln!(out, "# TYPE reef_proxy_requests_total counter")?;
        for (app, stats) in apps {
            for (class, count) in CLASSES.iter().zip(&stats.by_class) {
                let count = count.load(Ordering::Relaxed);
                writeln!(
                    out,
                    "reef_proxy_requests_total{{app=\"{app}\",class=\"{class}\"}} {count}"
                )?;
            }
        }
        writeln!(
            out,
            "# HELP reef_proxy_request_duration_seconds Time until the response headers were ready, by app."
        )?;
        writeln!(out, "# TYPE reef_proxy_request_duration_seconds histogram")?;
        for (app, stats) in apps {
            stats.duration.write(
                out,
                "reef_proxy_request_duration_seconds",
                &format!("app=\"{app}\""),
            );
        }
        writeln!(
            out,
            "# HELP reef_proxy_open_connections Client connections open now."
        )?;
        writeln!(out, "# TYPE reef_proxy_open_connections gauge")?;
        writeln!(
            out,
            "reef_proxy_open_connections {}",
            self.open_connections()
        )?;
        writeln!(
            out,
            "# HELP reef_proxy_tls_handshake_failures_total TLS handshakes that failed or timed out."
        )?;
        writeln!(
            out,
            "# TYPE reef_proxy_tls_handshake_failures_total counter"
        )?;
        writeln!(
            out,
            "reef_proxy_tls_handshake_failures_total {}",
            self.inner.handshake_failures.load(Ordering::Relaxed)
        )
    }

    fn stats(&self, app: &str) -> Arc<AppStats> {
        if let Some(stats) = self
            .inner
            .apps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(app)
        {
            return Arc::clone(stats);
        }
        let mut apps = self
            .inner
            .apps
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(apps.entry(app.to_owned()).or_default())
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("open_connections", &self.open_connections())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
