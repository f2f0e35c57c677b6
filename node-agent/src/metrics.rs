//! The agent's `/metrics` endpoint (`--metrics ADDR`): the node proxy's
//! counters (requests per app and status class, latency, open connections,
//! TLS handshake failures) and a few gauges of the agent's own, in the
//! Prometheus text format, served by [`reef_proxy::exposition`].

use crate::Agent;
use std::fmt::Write;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Binds the metrics listener, if one is configured.
pub(crate) async fn bind(
    addr: Option<std::net::SocketAddr>,
) -> Result<Option<TcpListener>, crate::AgentError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|e| crate::AgentError::Config(format!("cannot listen for metrics on {addr}: {e}")))
}

impl Agent {
    /// Serves `/metrics` on `listener` until shutdown.
    pub(crate) async fn serve_metrics(self: Arc<Self>, listener: TcpListener) {
        let shutdown = self.shutdown.clone();
        let agent = self;
        let render: reef_proxy::exposition::Render = Arc::new(move || agent.render_metrics());
        reef_proxy::exposition::serve_metrics(listener, render, shutdown).await;
    }

    /// The proxy's metrics, then the agent's gauges.
    pub(crate) fn render_metrics(&self) -> String {
        let mut out = self.router.metrics().render();
        let gauges = [
            (
                "reef_agent_jobs_running",
                "Batch job allocations live on this node.",
                self.records.live_count(),
            ),
            (
                "reef_agent_instances_live",
                "App instances live on this node (any state but finished).",
                self.instances.live_count(),
            ),
            (
                "reef_agent_apps_served_locally",
                "Apps with a healthy instance on this node.",
                self.services.routing.apps_served_locally(),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        }
        let usage = self.sandbox.live_usage();
        let name = "reef_alloc_cpu_seconds_total";
        let _ = write!(
            out,
            "# HELP {name} CPU time used by each running job or instance (its control group).\n# TYPE {name} counter\n"
        );
        for (group, cpu, _) in &usage {
            let _ = writeln!(out, "{name}{{alloc=\"{group}\"}} {cpu:.3}");
        }
        let name = "reef_alloc_memory_bytes";
        let _ = write!(
            out,
            "# HELP {name} Memory held now by each running job or instance.\n# TYPE {name} gauge\n"
        );
        for (group, _, memory) in &usage {
            if let Some(memory) = memory {
                let _ = writeln!(out, "{name}{{alloc=\"{group}\"}} {memory}");
            }
        }
        let name = "reef_agent_commands_refused_total";
        let _ = write!(
            out,
            "# HELP {name} Commands refused by their seal (unsigned, forged, misaddressed, expired, replayed).\n# TYPE {name} counter\n"
        );
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        for reason in ["unsigned", "forged", "misaddressed", "expired", "replayed"] {
            let count = refused.get(reason).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {count}");
        }
        out
    }
}
