//! What a client may send: a body over the size limit is refused or cut,
//! and a client that stalls in the middle of its body is cut off while
//! everyone else is served.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use reef_proxy::{ProxyConfig, Router};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::clients::h1_client;
use crate::support::{read_reply, within, TestBackend, TestProxy};

async fn limited(config: ProxyConfig) -> (TestBackend, TestProxy) {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &["web.test".to_owned()], vec![web.backend()]);
    (web, TestProxy::start_with(router, config).await)
}

fn small_bodies() -> ProxyConfig {
    ProxyConfig {
        max_request_body_bytes: 1000,
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413_without_reaching_the_instance() {
    let (web, proxy) = limited(small_bodies()).await;
    let request = proxy
        .request(Method::POST, "web.test", "/count")
        .body(Full::new(Bytes::from(vec![b'x'; 1001])))
        .expect("request");
    let reply = read_reply(proxy.send(request).await).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.body, "the request body is larger than 1000 bytes\n");
    assert_eq!(web.hits(), 0);

    let request = proxy
        .request(Method::POST, "web.test", "/count")
        .body(Full::new(Bytes::from(vec![b'x'; 1000])))
        .expect("request");
    let reply = read_reply(proxy.send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "1000");
}

#[tokio::test]
async fn a_streamed_body_growing_past_the_limit_is_cut() {
    let (web, proxy) = limited(small_bodies()).await;
    let tcp = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    let mut client = h1_client(tcp).await;
    // No Content-Length: the proxy learns the size as the chunks come.
    let chunks = futures::stream::iter(
        (0..3).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'x'; 600])))),
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri("/count")
        .header("host", "web.test")
        .body(StreamBody::new(chunks).boxed())
        .expect("request");
    // The proxy answers 413 and closes; the close may beat the answer to the
    // client, but the instance must never answer the whole body.
    if let Ok(response) = within(client.send_request(request)).await {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    // Whether the instance saw the request start depends on how the chunks
    // arrived: all with the head (refused before forwarding) or later.
    assert!(
        web.hits() <= 1,
        "the request was forwarded {} times",
        web.hits()
    );
    assert_eq!(proxy.get("web.test", "/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_client_stalling_mid_body_is_cut_off_while_others_are_served() {
    let config = ProxyConfig {
        client_body_timeout: Duration::from_secs(2),
        ..ProxyConfig::default()
    };
    let (web, proxy) = limited(config).await;

    let mut stalled = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    within(stalled.write_all(
        b"POST /count HTTP/1.1\r\nHost: web.test\r\nContent-Length: 100\r\n\r\n0123456789",
    ))
    .await
    .expect("send part of the body");
    // The request reached the instance, and its body stopped coming.
    crate::support::eventually("the stalled request reaches the instance", || {
        web.hits() == 1
    })
    .await;

    let reply = proxy.get("web.test", "/").await;
    assert_eq!(reply.status, StatusCode::OK);
    let mut probe = [0u8; 1];
    assert!(
        matches!(stalled.try_read(&mut probe), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the stalled client was answered before the other one"
    );

    let answer = crate::support::read_to_close(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(
        answer.ends_with("the request body stopped arriving\n"),
        "{answer}"
    );
    assert_eq!(proxy.router.in_flight("web-1"), 0);
}
