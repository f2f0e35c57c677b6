//! The HTTP app instance the tests route to: a real hyper server on a free
//! port with endpoints that echo, hold, stream, generate and count.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use reef_proxy::Backend;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::within;

type TestBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// An app instance: answers on 127.0.0.1 with its name, and has endpoints
/// that echo, hold or stream.
///
/// - `/hold` waits for [`TestBackend::release`] before answering.
/// - `/slow` answers at once with `first `, then waits for a release before `second`.
/// - `/echo` streams the request body back.
/// - `/headers` lists the request headers it got, one `name: value` a line,
///   and answers with hop-by-hop headers of its own.
/// - `/events` is a server-sent event stream: `one`, then (after a release) `two`.
/// - `/download?bytes=N` streams N bytes, generated as they are sent.
/// - `/count` reads the request body as it arrives and answers its length.
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
        Backend::new(self.name.clone(), self.addr)
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
        "/events" => {
            let mut response = Response::new(events_body(Arc::clone(&shared)));
            response
                .headers_mut()
                .insert("content-type", "text/event-stream".parse().expect("header"));
            response
        }
        "/download" => {
            let bytes = request
                .uri()
                .query()
                .and_then(|query| query.strip_prefix("bytes="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Response::new(generated_body(bytes))
        }
        "/count" => {
            let mut body = request.into_body();
            let mut length: u64 = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        length += frame.data_ref().map_or(0, |data| data.len() as u64);
                    }
                    Err(error) => return error_response(format!("body broke: {error}")),
                }
            }
            Response::new(full(length.to_string()))
        }
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

fn error_response(text: String) -> Response<TestBody> {
    let mut response = Response::new(full(text));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// The size of the chunks generated bodies are made of.
pub const CHUNK: usize = 64 * 1024;

/// `bytes` bytes of `x`, made chunk by chunk as the receiver asks for them.
fn generated_body(bytes: u64) -> TestBody {
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    let frames = futures::stream::unfold(bytes, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let size = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
            let frame = Frame::data(chunk.slice(..size));
            Some((Ok::<_, hyper::Error>(frame), left - size as u64))
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

/// Server-sent events: `one`, then (after a release) `two`.
fn events_body(shared: Arc<BackendShared>) -> TestBody {
    let frames = futures::stream::unfold(0u8, move |step| {
        let shared = Arc::clone(&shared);
        async move {
            let event: &'static [u8] = match step {
                0 => b"data: one\n\n",
                1 => {
                    shared.gate.notified().await;
                    b"data: two\n\n"
                }
                _ => return None,
            };
            Some((
                Ok::<_, hyper::Error>(Frame::data(Bytes::from_static(event))),
                step + 1,
            ))
        }
    });
    StreamBody::new(frames).boxed_unsync()
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
