//! The HTTP/1.1 fast path at the edges of its job: pipelining, handing a
//! connection to the full path mid-way, chunked bodies, upstream connections
//! the instance closed, responses framed by the connection's end, and
//! instances that answer before reading the whole body; and the same
//! pooled connections used by HTTP/2 clients' requests (`h1::direct`). The instances here
//! are raw TCP servers, so each test controls exactly what goes on the wire.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use reef_proxy::{Backend, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::clients::{h2_client, h2_send, no_body};
use crate::support::{raw_exchange, read_to_close, within, TestBackend, TestProxy};

fn domains(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

async fn proxy_for(backend: Backend) -> TestProxy {
    let router = Router::new();
    router.set_app("web", &domains(&["web.test"]), vec![backend]);
    TestProxy::start(router).await
}

/// A raw instance: every accepted connection is handed, with its number
/// (from 0), to `script`. Returns its address and how many connections it took.
async fn raw_instance<F, Fut>(script: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = within(TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let number = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(script(number, stream));
        }
    });
    (addr, accepted)
}

/// An instance that answers each connection's first request with
/// `response`, then closes the connection.
async fn answering_once(response: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    raw_instance(move |_, mut stream| async move {
        if read_head(&mut stream).await.is_some() {
            let _ = stream.write_all(response).await;
        }
    })
    .await
}

/// Reads one request head (up to its blank line) from `stream`.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

const OK_HI: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi";

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let web = TestBackend::start("web-1").await;
    let proxy = proxy_for(web.backend()).await;
    let answer = raw_exchange(
        proxy.addr,
        b"GET /download?bytes=5 HTTP/1.1\r\nHost: web.test\r\n\r\n\
          POST /count HTTP/1.1\r\nHost: web.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    let first = answer.find("HTTP/1.1 200").expect("first answer");
    let second = answer.rfind("HTTP/1.1 200").expect("second answer");
    assert!(first < second, "{answer}");
    assert!(answer.ends_with("\r\n\r\n3"), "{answer}");
    assert_eq!(web.hits(), 2);
}

#[tokio::test]
async fn a_request_the_fast_path_does_not_take_moves_the_connection_to_the_full_path() {
    let web = TestBackend::start("web-1").await;
    let proxy = proxy_for(web.backend()).await;
    // HTTP/1.1 first (fast path), then HTTP/1.0 on the same connection (hyper).
    let answer = raw_exchange(
        proxy.addr,
        b"GET /count HTTP/1.1\r\nHost: web.test\r\n\r\nGET /count HTTP/1.0\r\nHost: web.test\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("HTTP/1.0 200"), "{answer}");
    assert_eq!(web.hits(), 2);
}

#[tokio::test]
async fn chunked_bodies_pass_through_with_their_framing() {
    let web = TestBackend::start("web-1").await;
    let proxy = proxy_for(web.backend()).await;
    let answer = raw_exchange(
        proxy.addr,
        b"POST /count HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5;note=x\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n11"), "{answer}");
}

#[tokio::test]
async fn a_chunked_body_with_bad_framing_is_refused() {
    let web = TestBackend::start("web-1").await;
    let proxy = proxy_for(web.backend()).await;
    let answer = raw_exchange(
        proxy.addr,
        b"POST /count HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("chunked framing"), "{answer}");
}

#[tokio::test]
async fn an_upstream_connection_the_instance_closed_is_replaced() {
    // Each connection answers one request and closes, without saying so:
    // what an instance's keep-alive timeout does to an idle connection.
    let (addr, accepted) = answering_once(OK_HI).await;
    let proxy = proxy_for(Backend::new("raw-1", addr)).await;
    let mut client = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    for _ in 0..3 {
        within(client.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n"))
            .await
            .expect("send");
        let mut answer = vec![0u8; OK_HI.len()];
        within(client.read_exact(&mut answer))
            .await
            .expect("answer");
        assert_eq!(answer, OK_HI);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

/// An instance whose first connection answers one request, then takes the
/// next one and closes without answering (it closed the idle connection just
/// as the request was sent); later connections answer normally.
async fn closing_after_one() -> (SocketAddr, Arc<AtomicUsize>) {
    raw_instance(|number, mut stream| async move {
        loop {
            if read_head(&mut stream).await.is_none() {
                return;
            }
            if number == 0 && stream.write_all(OK_HI).await.is_ok() {
                let _ = read_head(&mut stream).await;
                return;
            }
            if stream.write_all(OK_HI).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_get_that_met_a_closing_connection_is_sent_again() {
    let (addr, accepted) = closing_after_one().await;
    let proxy = proxy_for(Backend::new("raw-1", addr)).await;
    let answer = raw_exchange(
        proxy.addr,
        b"GET /a HTTP/1.1\r\nHost: web.test\r\n\r\nGET /b HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_post_that_met_a_closing_connection_is_not_sent_again() {
    let (addr, accepted) = closing_after_one().await;
    let proxy = proxy_for(Backend::new("raw-1", addr)).await;
    let answer = raw_exchange(
        proxy.addr,
        b"GET /a HTTP/1.1\r\nHost: web.test\r\n\r\n\
          POST /b HTTP/1.1\r\nHost: web.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("HTTP/1.1 502"), "{answer}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_response_that_runs_until_close_closes_the_client_connection() {
    let (addr, _) = answering_once(b"HTTP/1.1 200 OK\r\n\r\nuntil the end").await;
    let proxy = proxy_for(Backend::new("raw-1", addr)).await;
    let mut client = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    within(client.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n"))
        .await
        .expect("send");
    let answer = read_to_close(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nuntil the end"), "{answer}");
}

#[tokio::test]
async fn an_instance_answering_before_the_body_is_complete_is_heard() {
    let (addr, _) = answering_once(
        b"HTTP/1.1 507 Insufficient Storage\r\ncontent-length: 4\r\nconnection: close\r\n\r\nfull",
    )
    .await;
    let proxy = proxy_for(Backend::new("raw-1", addr)).await;
    let mut client = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    // Declares a large body and sends only the start of it.
    within(client.write_all(
        b"PUT /big HTTP/1.1\r\nHost: web.test\r\nContent-Length: 100000000\r\n\r\nstart",
    ))
    .await
    .expect("send");
    let answer = read_to_close(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 507"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nfull"), "{answer}");
}

#[tokio::test]
async fn idle_clients_hold_no_upstream_connection() {
    let (addr, accepted) = raw_instance(|_, mut stream| async move {
        while read_head(&mut stream).await.is_some() {
            if stream.write_all(OK_HI).await.is_err() {
                return;
            }
        }
    })
    .await;
    let proxy = proxy_for(Backend::new("raw-1", addr)).await;
    // Ten clients, one after the other, each keeping its connection open.
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut client = within(TcpStream::connect(proxy.addr))
            .await
            .expect("connect");
        within(client.write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n"))
            .await
            .expect("send");
        let mut answer = vec![0u8; OK_HI.len()];
        within(client.read_exact(&mut answer))
            .await
            .expect("answer");
        assert_eq!(answer, OK_HI);
        clients.push(client);
    }
    // One listener, one pool: each request took the connection the one
    // before it gave back.
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "upstream connections for {} idle clients",
        clients.len()
    );
}

/// A request over an HTTP/2 connection to the proxy (h2c).
async fn h2_get(
    proxy: &TestProxy,
    path: &str,
) -> (http::response::Parts, Bytes, Option<http::HeaderMap>) {
    let tcp = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    let mut client = h2_client(tcp).await;
    let request = Request::builder()
        .uri(format!("http://web.test{path}"))
        .body(no_body())
        .expect("request");
    let (parts, body) = h2_send(&mut client, request).await.into_parts();
    let collected = within(body.collect()).await.expect("body");
    let trailers = collected.trailers().cloned();
    (parts, collected.to_bytes(), trailers)
}

#[tokio::test]
async fn http2_clients_get_http1_bodies_decoded_with_their_trailers() {
    let (addr, _) = raw_instance(|_, mut stream| async move {
        while let Some(head) = read_head(&mut stream).await {
            let answer: &[u8] = if head.starts_with("GET /chunked ") {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
                  5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\nuntil the end"
            };
            if stream.write_all(answer).await.is_err() || !head.starts_with("GET /chunked ") {
                return;
            }
        }
    })
    .await;
    let proxy = proxy_for(Backend::new("raw-1", addr)).await;

    let (parts, body, trailers) = h2_get(&proxy, "/chunked").await;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(!parts.headers.contains_key("transfer-encoding"));
    assert_eq!(body, "hello world");
    assert_eq!(trailers.expect("trailers")["x-sum"], "11");

    let (parts, body, _) = h2_get(&proxy, "/close").await;
    assert_eq!(parts.status, StatusCode::OK);
    assert!(!parts.headers.contains_key("x-hop"), "{:?}", parts.headers);
    assert_eq!(body, "until the end");
}

#[tokio::test]
async fn an_http2_get_that_met_a_closing_connection_is_sent_again() {
    let (addr, accepted) = closing_after_one().await;
    let proxy = proxy_for(Backend::new("raw-1", addr)).await;
    for _ in 0..2 {
        let (parts, body, _) = h2_get(&proxy, "/").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(body, "hi");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_http2_response_body_cut_short_fails_the_stream() {
    let (addr, _) =
        answering_once(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this").await;
    let proxy = proxy_for(Backend::new("raw-1", addr)).await;
    let tcp = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    let mut client = h2_client(tcp).await;
    let request = Request::builder()
        .uri("http://web.test/")
        .body(no_body())
        .expect("request");
    // The stream fails: before its head reached the client, or in its body.
    if let Ok(response) = within(client.send_request(request)).await {
        assert_eq!(response.status(), StatusCode::OK);
        assert!(within(response.into_body().collect()).await.is_err());
    }
}
