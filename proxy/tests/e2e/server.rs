//! The accept loop: limits on what clients send, and graceful shutdown.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use reef_proxy::{ProxyConfig, Router};

use crate::support::{raw_exchange, within, TestBackend, TestProxy};

fn web_domains() -> Vec<String> {
    vec!["web.test".to_owned()]
}

#[tokio::test]
async fn a_huge_header_is_refused_and_the_next_client_is_served() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![web.backend()]);
    let config = ProxyConfig {
        max_header_bytes: 16 * 1024,
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::start_with(router, config).await;

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: web.test\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    let answer = raw_exchange(proxy.addr, huge.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(web.hits(), 0);

    let reply = proxy.get("web.test", "/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "web-1 GET /");
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![web.backend()]);
    let mut proxy = TestProxy::start(router.clone()).await;

    let request = proxy
        .request(Method::GET, "web.test", "/slow")
        .body(Full::<Bytes>::default())
        .expect("request");
    let response = proxy.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    proxy.begin_shutdown();
    web.release();
    let body = within(response.into_body().collect())
        .await
        .expect("the whole body")
        .to_bytes();
    assert_eq!(body, "first second");
    proxy.stopped().await.expect("serve returned Ok");
    assert_eq!(router.in_flight("web-1"), 0);
}

#[tokio::test]
async fn shutdown_closes_what_is_left_after_the_grace() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![web.backend()]);
    let config = ProxyConfig {
        shutdown_grace: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let mut proxy = TestProxy::start_with(router.clone(), config).await;

    let request = proxy
        .request(Method::GET, "web.test", "/hold")
        .body(Full::<Bytes>::default())
        .expect("request");
    let never_answered = async {
        web.wait_held(1).await;
        proxy.begin_shutdown();
    };
    // The instance never answers: at the deadline the proxy gives up on the
    // request (503, or the connection closed if that came first).
    let (outcome, ()) =
        within(async { tokio::join!(proxy.try_send(request), never_answered) }).await;
    if let Ok(response) = outcome {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    proxy.stopped().await.expect("serve returned Ok");
    assert_eq!(router.in_flight("web-1"), 0);
}

#[tokio::test]
async fn a_client_slow_with_its_headers_is_cut_off() {
    let config = ProxyConfig {
        client_header_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::start_with(Router::new(), config).await;
    // The headers never end: hyper closes the connection without an answer
    // (the default timeout, 30 s, would outlast `within`).
    let answer = raw_exchange(proxy.addr, b"GET / HTTP/1.1\r\nHost: web.test\r\n").await;
    assert_eq!(answer, "");
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_cut_off() {
    let config = ProxyConfig {
        client_header_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::start_with(Router::new(), config).await;
    // Not a byte: before the protocol is even known, the deadline holds.
    let answer = raw_exchange(proxy.addr, b"").await;
    assert_eq!(answer, "");
}
