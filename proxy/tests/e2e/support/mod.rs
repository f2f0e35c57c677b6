//! Test support: a real HTTP backend on a free port, a running proxy in front
//! of it, and a client. Nothing is mocked; every wait is bounded by [`within`].
//!
//! - `backend`: the HTTP app instance, [`TestBackend`].
//! - `tls`: a test CA issuing certificates, and TLS clients.
//! - `ws`: a WebSocket echo backend and client.
//! - `clients`: HTTP/2 and streaming clients.

pub mod backend;
pub mod clients;
pub mod tls;
pub mod ws;

pub use backend::TestBackend;

use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use reef_proxy::{Certificates, ProxyConfig, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The longest any single step of a test may take.
pub const STEP: Duration = Duration::from_secs(10);

/// Waits until `condition` holds, checking every few milliseconds, failing
/// the test if it does not within [`STEP`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Awaits `future`, failing the test if it takes longer than [`STEP`].
pub async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(STEP, future)
        .await
        .expect("a test step timed out")
}

/// A response read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body's `name: value` lines as pairs (for `/headers`).
    pub fn header_lines(&self) -> Vec<(String, String)> {
        self.body
            .lines()
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }
}

/// Reads `response` to its end.
pub async fn read_reply(response: Response<Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = within(body.collect())
        .await
        .expect("response body")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).expect("utf-8 body"),
    }
}

/// A proxy serving plain HTTP on a free port (and HTTPS on another when
/// started with certificates), with a client to talk to it.
pub struct TestProxy {
    pub addr: SocketAddr,
    /// The HTTPS listener, when started with [`TestProxy::start_tls`].
    pub tls_addr: Option<SocketAddr>,
    /// The node-to-node listener, when started with [`TestProxy::start_node`].
    pub peer_addr: Option<SocketAddr>,
    pub router: Router,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<io::Result<()>>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl TestProxy {
    /// A proxy with the default settings.
    pub async fn start(router: Router) -> Self {
        Self::start_with(router, ProxyConfig::default()).await
    }

    /// A proxy with `config`.
    pub async fn start_with(router: Router, config: ProxyConfig) -> Self {
        Self::launch(router, config, None).await
    }

    /// A proxy with `config`, serving HTTPS with `certs` too.
    pub async fn start_tls(router: Router, config: ProxyConfig, certs: Certificates) -> Self {
        Self::launch(router, config, Some(certs)).await
    }

    /// A proxy with `config` that also serves other nodes on a peer
    /// listener (mutual TLS with `config.peer`, plain without), and HTTPS
    /// with `certs` when given.
    pub async fn start_node(
        router: Router,
        config: ProxyConfig,
        certs: Option<Certificates>,
    ) -> Self {
        let mut node = Self::launch(router, config.clone(), certs).await;
        let listener = within(TcpListener::bind("127.0.0.1:0"))
            .await
            .expect("bind the peer listener");
        node.peer_addr = Some(listener.local_addr().expect("peer address"));
        node.tasks.push(tokio::spawn(reef_proxy::serve_peer(
            listener,
            node.router.clone(),
            config,
            node.shutdown.clone(),
        )));
        node
    }

    async fn launch(router: Router, config: ProxyConfig, certs: Option<Certificates>) -> Self {
        let listener = within(TcpListener::bind("127.0.0.1:0"))
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut tls_addr = None;
        if let Some(certs) = certs {
            let tls_listener = within(TcpListener::bind("127.0.0.1:0"))
                .await
                .expect("bind the HTTPS proxy");
            tls_addr = Some(tls_listener.local_addr().expect("HTTPS address"));
            tasks.push(tokio::spawn(reef_proxy::serve_tls(
                tls_listener,
                router.clone(),
                config.clone(),
                certs,
                shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(reef_proxy::serve(
            listener,
            router.clone(),
            config,
            shutdown.clone(),
        )));
        Self {
            addr,
            tls_addr,
            peer_addr: None,
            router,
            shutdown,
            tasks,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// A request for `path` on `host`, addressed to this proxy.
    pub fn request(&self, method: Method, host: &str, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("host", host)
    }

    /// Sends `request` and returns once the response headers arrived.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Response<Incoming> {
        within(self.client.request(request))
            .await
            .expect("the proxy answered")
    }

    /// Sends `request`; an error when the connection broke before response headers.
    pub async fn try_send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        within(self.client.request(request)).await
    }

    /// GETs `path` on `host` and reads the whole response.
    pub async fn get(&self, host: &str, path: &str) -> Reply {
        let request = self
            .request(Method::GET, host, path)
            .body(Full::default())
            .expect("request");
        read_reply(self.send(request).await).await
    }

    /// Asks the proxy to shut down, without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits for `serve` (and `serve_tls`, `serve_peer`) to return.
    pub async fn stopped(&mut self) -> io::Result<()> {
        assert!(!self.tasks.is_empty(), "serve still running");
        for task in self.tasks.drain(..) {
            within(task).await.expect("serve did not panic")?;
        }
        Ok(())
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An address where nothing listens (a port just bound and released).
pub async fn dead_addr() -> SocketAddr {
    let listener = within(TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind");
    listener.local_addr().expect("address")
}

/// Writes `request` on a fresh connection to `addr` and reads what comes back
/// until the server closes it (a reset after data counts as the end).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = within(TcpStream::connect(addr)).await.expect("connect");
    // The server may answer and close before it read everything; that is fine.
    let _ = within(stream.write_all(request)).await;
    read_to_close(&mut stream).await
}

/// Reads from `stream` until the server closes it (a reset after data counts as the end).
pub async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match within(stream.read(&mut chunk)).await {
            Ok(0) => break,
            Ok(read) => received.extend_from_slice(&chunk[..read]),
            Err(_) if !received.is_empty() => break,
            Err(error) => panic!("nothing received before {error}"),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}
