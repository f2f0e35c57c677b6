//! The coordinator's `/metrics` (`reef coordinator --metrics ADDR`), in the
//! Prometheus text format. Counters and latencies are kept as calls happen
//! (whichever coordinator takes them); the cluster's gauges (jobs, nodes,
//! rollouts) come from the leader's view, which it hands over after each
//! tick, so only the leader reports them (`reef_coordinator_leader` says
//! which one that is). Every metric is listed in docs/operations.md.

use crate::plan::metrics::{self as plan, View};
use reef_proto::api::{ApiError, ApiErrorKind, ApiResponse};
use reef_proxy::exposition::{header, Histogram};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What the coordinator counts; cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Whether anything serves them: the leader's view is computed only then.
    served: bool,
    leading: AtomicBool,
    terms: AtomicU64,
    placements: AtomicU64,
    submitted: AtomicU64,
    api: Mutex<BTreeMap<&'static str, Arc<VerbStats>>>,
    view: Mutex<Option<View>>,
    audit_dropped: Mutex<Option<Arc<AtomicU64>>>,
}

/// One verb's calls: how each ended, and how long they took.
#[derive(Default)]
struct VerbStats {
    /// done, refused, failed.
    outcomes: [AtomicU64; 3],
    duration: Histogram,
}

const OUTCOMES: [&str; 3] = ["done", "refused", "failed"];

impl Metrics {
    /// Metrics that `served` says a `/metrics` endpoint shows.
    pub(crate) fn new(served: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                served,
                ..Inner::default()
            }),
        }
    }

    /// Whether the leader's view is worth computing (something serves it).
    pub(crate) fn wants_view(&self) -> bool {
        self.inner.served
    }

    /// Counts a call of `verb` that ended with `result` after `took`.
    pub(crate) fn api_call(
        &self,
        verb: &'static str,
        result: &Result<ApiResponse, ApiError>,
        took: Duration,
    ) {
        let outcome = match result {
            Ok(_) => 0,
            Err(e) if e.kind == ApiErrorKind::Forbidden => 1,
            Err(_) => 2,
        };
        let stats = {
            let mut api = self
                .inner
                .api
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(api.entry(verb).or_default())
        };
        stats.outcomes[outcome].fetch_add(1, Ordering::Relaxed);
        stats.duration.observe(took);
    }

    /// A term as leader began.
    pub(crate) fn leading(&self) {
        self.inner.terms.fetch_add(1, Ordering::Relaxed);
        self.inner.leading.store(true, Ordering::Relaxed);
    }

    /// The term ended: the cluster's gauges are the next leader's to report.
    pub(crate) fn following(&self) {
        self.inner.leading.store(false, Ordering::Relaxed);
        *self
            .inner
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// `n` jobs were recorded, `placed` of them given a node at once.
    pub(crate) fn jobs_recorded(&self, n: usize, placed: usize) {
        self.inner.submitted.fetch_add(n as u64, Ordering::Relaxed);
        self.inner
            .placements
            .fetch_add(placed as u64, Ordering::Relaxed);
    }

    /// A waiting job or an app instance was given a node.
    pub(crate) fn placed(&self, n: usize) {
        self.inner.placements.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The leader's view after its latest tick.
    pub(crate) fn view(&self, view: View) {
        *self
            .inner
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(view);
    }

    /// Where the audit log counts the entries it dropped.
    pub(crate) fn audit_dropped(&self, dropped: Arc<AtomicU64>) {
        *self
            .inner
            .audit_dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(dropped);
    }

    /// Everything, in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let inner = &self.inner;
        let mut out = String::new();
        let leading = inner.leading.load(Ordering::Relaxed);
        header(
            &mut out,
            "reef_coordinator_leader",
            "gauge",
            "1 on the coordinator that leads now, 0 on the others.",
        );
        out += &format!("reef_coordinator_leader {}\n", u8::from(leading));
        counter(
            &mut out,
            "reef_coordinator_leader_terms_total",
            "Terms as leader this coordinator began (each leader change counts once, on the new leader).",
            inner.terms.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "reef_coordinator_jobs_submitted_total",
            "Jobs this coordinator recorded as leader (submitted, periodic runs and copies of replicated jobs).",
            inner.submitted.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "reef_coordinator_placements_total",
            "Jobs and app instances this coordinator gave a node as leader.",
            inner.placements.load(Ordering::Relaxed),
        );
        let api: Vec<(&'static str, Arc<VerbStats>)> = inner
            .api
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(verb, stats)| (*verb, Arc::clone(stats)))
            .collect();
        header(
            &mut out,
            "reef_coordinator_api_requests_total",
            "counter",
            "API calls this coordinator answered, by verb and outcome (done, refused, failed).",
        );
        for (verb, stats) in &api {
            for (outcome, count) in OUTCOMES.iter().zip(&stats.outcomes) {
                out += &format!(
                    "reef_coordinator_api_requests_total{{verb=\"{verb}\",outcome=\"{outcome}\"}} {}\n",
                    count.load(Ordering::Relaxed)
                );
            }
        }
        header(
            &mut out,
            "reef_coordinator_api_duration_seconds",
            "histogram",
            "Time from taking an API call to its answer, by verb.",
        );
        for (verb, stats) in &api {
            stats.duration.write(
                &mut out,
                "reef_coordinator_api_duration_seconds",
                &format!("verb=\"{verb}\""),
            );
        }
        header(
            &mut out,
            "reef_coordinator_kv_write_duration_seconds",
            "histogram",
            "Time each KV write (create, put, compare-and-set) took, acknowledgement included.",
        );
        crate::store::bucket::WRITES.write(
            &mut out,
            "reef_coordinator_kv_write_duration_seconds",
            "",
        );
        let dropped = inner
            .audit_dropped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |d| d.load(Ordering::Relaxed));
        counter(
            &mut out,
            "reef_coordinator_audit_dropped_total",
            "Audit entries dropped because the audit stream did not keep up.",
            dropped,
        );
        if let Some(view) = inner
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            plan::render_view(&mut out, view);
        }
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "counter", help);
    out.push_str(&format!("{name} {value}\n"));
}
