//! Proxy settings, with the defaults a node agent runs with.

use std::time::Duration;

/// Proxy settings.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// How long to wait for an instance to accept a connection (default 5 s); then 502.
    pub upstream_connect_timeout: Duration,
    /// How long to wait for an instance's response headers, connecting
    /// included (default 60 s); then 504. The body may take longer.
    pub upstream_timeout: Duration,
    /// How long a client may take to send a request's headers (default 30 s);
    /// the connection is closed after that. Also bounds how long an idle
    /// keep-alive connection waits for its next request.
    pub client_header_timeout: Duration,
    /// The largest request head (request line and headers) a client may send,
    /// in bytes (default 64 KiB); a larger one gets 431 and its connection is
    /// closed. It also caps the connection's read buffer (at least 8 KiB,
    /// hyper's minimum).
    pub max_header_bytes: usize,
    /// How long in-flight requests may finish once shutdown begins (default
    /// 10 s); connections still open after that are closed.
    pub shutdown_grace: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(60),
            client_header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
