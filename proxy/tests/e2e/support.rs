//! Test support: a real HTTP backend on a free port, a running proxy in front
//! of it, and a client. Nothing is mocked; every wait is bounded by [`within`].

use std::convert::Infallible;
use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reef_proxy::{Backend, ProxyConfig, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The longest any single step of a test may take.
pub const STEP: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`STEP`].
pub async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(STEP, future)
        .await
        .expect("a test step timed out")
}

type TestBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// An app instance: answers on 127.0.0.1 with its name, and has endpoints
/// that echo, hold or stream.
///
/// - `/hold` waits for [`TestBackend::release`] before answering.
/// - `/slow` answers at once with `first `, then waits for a release before `second`.
/// - `/echo` streams the request body back.
/// - `/headers` lists the request headers it got, one `name: value` a line,
///   and answers with hop-by-hop headers of its own.
/// - anything else answers `<name> <METHOD> <path>`.
pub struct TestBackend {
    pub name: String,
    pub addr: SocketAddr,
    shared: Arc<BackendShared>,
    held: watch::Receiver<u64>,
    stop: CancellationToken,
}

struct BackendShared {
    name: String,
    gate: Notify,
    held: watch::Sender<u64>,
    hits: AtomicU64,
}

impl TestBackend {
    /// Starts a backend named `name` on a free port.
    pub async fn start(name: &str) -> Self {
        let listener = within(TcpListener::bind("127.0.0.1:0"))
            .await
            .expect("bind a backend");
        let addr = listener.local_addr().expect("backend address");
        let (held_tx, held) = watch::channel(0);
        let shared = Arc::new(BackendShared {
            name: name.to_owned(),
            gate: Notify::new(),
            held: held_tx,
            hits: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop.clone()));
        Self {
            name: name.to_owned(),
            addr,
            shared,
            held,
            stop,
        }
    }

    /// This instance as the proxy knows it.
    pub fn backend(&self) -> Backend {
        Backend {
            id: self.name.clone(),
            addr: self.addr,
        }
    }

    /// Lets one `/hold` or `/slow` request go on (now or when it gets there).
    pub fn release(&self) {
        self.shared.gate.notify_one();
    }

    /// Waits until `count` `/hold` requests have arrived here in all.
    pub async fn wait_held(&self, count: u64) {
        let mut held = self.held.clone();
        within(held.wait_for(|&arrived| arrived >= count))
            .await
            .expect("backend alive");
    }

    /// Requests this instance has received.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<BackendShared>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(answer(shared, request).await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

async fn answer(shared: Arc<BackendShared>, request: Request<Incoming>) -> Response<TestBody> {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let name = shared.name.clone();
    let mut response = match request.uri().path() {
        "/hold" => {
            shared.held.send_modify(|arrived| *arrived += 1);
            shared.gate.notified().await;
            Response::new(full(format!("{name} held")))
        }
        "/slow" => Response::new(slow_body(Arc::clone(&shared))),
        "/echo" => Response::new(request.into_body().boxed_unsync()),
        "/headers" => {
            let mut listing = String::new();
            for (header, value) in request.headers() {
                let value = String::from_utf8_lossy(value.as_bytes());
                listing.push_str(&format!("{header}: {value}\n"));
            }
            let mut response = Response::new(full(listing));
            let headers = response.headers_mut();
            headers.insert("connection", "x-resp-secret".parse().expect("header"));
            headers.insert("x-resp-secret", "1".parse().expect("header"));
            headers.insert("keep-alive", "timeout=5".parse().expect("header"));
            headers.insert("x-kept", "yes".parse().expect("header"));
            response
        }
        path => Response::new(full(format!("{name} {} {path}", request.method()))),
    };
    response
        .headers_mut()
        .insert("x-backend", name.parse().expect("header"));
    response
}

fn full(text: String) -> TestBody {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `first `, then (after a release) `second`.
fn slow_body(shared: Arc<BackendShared>) -> TestBody {
    let frames = futures::stream::unfold(0u8, move |step| {
        let shared = Arc::clone(&shared);
        async move {
            let chunk: &'static [u8] = match step {
                0 => b"first ",
                1 => {
                    shared.gate.notified().await;
                    b"second"
                }
                _ => return None,
            };
            let frame = Frame::data(Bytes::from_static(chunk));
            Some((Ok::<_, hyper::Error>(frame), step + 1))
        }
    });
    StreamBody::new(frames).boxed_unsync()
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

/// A proxy serving on a free port, with a client to talk to it.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub router: Router,
    shutdown: CancellationToken,
    task: Option<JoinHandle<io::Result<()>>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl TestProxy {
    /// A proxy with the default settings.
    pub async fn start(router: Router) -> Self {
        Self::start_with(router, ProxyConfig::default()).await
    }

    /// A proxy with `config`.
    pub async fn start_with(router: Router, config: ProxyConfig) -> Self {
        let listener = within(TcpListener::bind("127.0.0.1:0"))
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(reef_proxy::serve(
            listener,
            router.clone(),
            config,
            shutdown.clone(),
        ));
        Self {
            addr,
            router,
            shutdown,
            task: Some(task),
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

    /// Waits for `serve` to return.
    pub async fn stopped(&mut self) -> io::Result<()> {
        let task = self.task.take().expect("serve still running");
        within(task).await.expect("serve did not panic")
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
