//! The agent's `/metrics` endpoint (`--metrics ADDR`): the node proxy's
//! counters (requests per app and status class, latency, open connections,
//! TLS handshake failures) and a few gauges of the agent's own, in the
//! Prometheus text format. Any other path is 404. One tracked task per
//! connection; everything ends on shutdown.

use crate::Agent;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Pause after a failed accept, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
        tracing::info!(addr = ?listener.local_addr().ok(), "metrics listening");
        let connections = TaskTracker::new();
        loop {
            let stream = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics: could not accept a connection");
                        tokio::select! {
                            _ = self.shutdown.cancelled() => break,
                            _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        }
                    }
                },
            };
            connections.spawn(self.clone().metrics_connection(stream));
        }
        connections.close();
        if tokio::time::timeout(SHUTDOWN_GRACE * 2, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("metrics connections did not close in time");
        }
    }

    async fn metrics_connection(self: Arc<Self>, stream: tokio::net::TcpStream) {
        let agent = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let response = agent.answer_metrics(&request);
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let mut connection = std::pin::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = self.shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                match tokio::time::timeout(SHUTDOWN_GRACE, connection.as_mut()).await {
                    Ok(result) => result,
                    Err(_) => Ok(()),
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "metrics connection ended with an error");
        }
    }

    fn answer_metrics(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let (status, content_type, body) = if request.uri().path() != "/metrics" {
            (
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found\n".to_string(),
            )
        } else if request.method() != Method::GET && request.method() != Method::HEAD {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "use GET\n".to_string(),
            )
        } else {
            (StatusCode::OK, CONTENT_TYPE, self.render_metrics())
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = header::HeaderValue::from_str(content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
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
