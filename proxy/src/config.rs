//! Proxy settings, with the defaults a node agent runs with. Every option is
//! documented here and only here.

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
    /// HTTP/1.1 keep-alive connection waits for its next request, and how long
    /// a new connection (after its TLS handshake) may take to send its first bytes.
    pub client_header_timeout: Duration,
    /// The largest request head a client may send, in bytes (default 64 KiB).
    /// HTTP/1.1: a larger head gets 431 and its connection is closed; this also
    /// caps the connection's read buffer (at least 8 KiB, hyper's minimum).
    /// HTTP/2: the largest header list the proxy accepts on a stream.
    pub max_header_bytes: usize,
    /// How long in-flight requests (and open WebSockets) may finish once
    /// shutdown begins (default 10 s); connections still open after that are closed.
    pub shutdown_grace: Duration,
    /// How long a TLS client may take to finish its handshake (default 10 s);
    /// the connection is closed after that.
    pub tls_handshake_timeout: Duration,
    /// The port clients reach the HTTPS listener on (default 443), used in the
    /// `Location` of HTTP→HTTPS redirects; 443 is left out of the URL.
    pub https_port: u16,
    /// The largest request body the proxy forwards, in bytes (default 1 GiB).
    /// A request declaring a larger `Content-Length` gets 413 without being
    /// forwarded; a streamed body that grows past it is cut off.
    pub max_request_body_bytes: u64,
    /// How long a request body may make no progress (default 60 s): a client
    /// that stops sending its body for that long gets 408 and is cut off.
    pub client_body_timeout: Duration,
    /// How many requests one HTTP/2 client connection may have open at once (default 128).
    pub http2_max_concurrent_streams: u32,
    /// How often an idle HTTP/2 connection is pinged, and how long the ping
    /// may go unanswered before the connection is closed (default 20 s): finds
    /// clients that went away without closing.
    pub http2_keep_alive: Duration,
    /// Node-to-node TLS (default none): how other nodes' peer listeners
    /// are reached (backends with a TLS name), and what [`serve_peer`]
    /// requires of those who reach this one.
    ///
    /// [`serve_peer`]: crate::serve_peer
    pub peer: Option<crate::PeerTls>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(60),
            client_header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            https_port: 443,
            max_request_body_bytes: 1024 * 1024 * 1024,
            client_body_timeout: Duration::from_secs(60),
            http2_max_concurrent_streams: 128,
            http2_keep_alive: Duration::from_secs(20),
            peer: None,
        }
    }
}
