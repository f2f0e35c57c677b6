//! Routing by host, the proxy's own error answers, header rewriting and
//! passing requests through unchanged otherwise.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use reef_proxy::{Backend, ProxyConfig, Router};

use crate::support::{dead_addr, raw_exchange, read_reply, TestBackend, TestProxy};

fn domains(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[tokio::test]
async fn hosts_route_to_their_apps() {
    let web = TestBackend::start("web-1").await;
    let api = TestBackend::start("api-1").await;
    let router = Router::new();
    router.set_app("web", &domains(&["web.test"]), vec![web.backend()]);
    router.set_app("api", &domains(&["api.test"]), vec![api.backend()]);
    let proxy = TestProxy::start(router).await;

    let reply = proxy.get("web.test", "/index?x=1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "web-1 GET /index");
    assert_eq!(proxy.get("api.test", "/v1").await.body, "api-1 GET /v1");
    // Case, port and a trailing dot do not matter.
    assert_eq!(
        proxy.get("API.Test.:8080", "/v1").await.body,
        "api-1 GET /v1"
    );
}

#[tokio::test]
async fn an_unknown_host_is_404() {
    let proxy = TestProxy::start(Router::new()).await;
    let reply = proxy.get("nowhere.test", "/").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.body, "no app is deployed at nowhere.test\n");
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
}

#[tokio::test]
async fn a_request_without_host_is_400() {
    let proxy = TestProxy::start(Router::new()).await;
    let answer = raw_exchange(proxy.addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
    assert!(
        answer.ends_with("the request has no valid Host header\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_app_without_instances_is_503() {
    let router = Router::new();
    router.set_app("web", &domains(&["web.test"]), Vec::new());
    let proxy = TestProxy::start(router).await;
    let reply = proxy.get("web.test", "/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers["retry-after"], "1");
    assert_eq!(reply.body, "web has no healthy instance right now\n");
}

#[tokio::test]
async fn a_dead_instance_is_502() {
    let router = Router::new();
    let dead = Backend::new("dead", dead_addr().await);
    router.set_app("web", &domains(&["web.test"]), vec![dead]);
    let proxy = TestProxy::start(router).await;
    let reply = proxy.get("web.test", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.body, "web: instance did not answer\n");
    assert_eq!(proxy.router.in_flight("dead"), 0);
}

#[tokio::test]
async fn an_instance_slow_to_answer_is_504() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &domains(&["web.test"]), vec![web.backend()]);
    let config = ProxyConfig {
        upstream_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::start_with(router, config).await;
    // `/hold` never answers unless released.
    let reply = proxy.get("web.test", "/hold").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.body, "web: instance did not answer in time\n");
    assert_eq!(proxy.router.in_flight("web-1"), 0);
}

#[tokio::test]
async fn forwarded_headers_replace_the_clients_and_hop_by_hop_ones_are_dropped() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &domains(&["web.test"]), vec![web.backend()]);
    let proxy = TestProxy::start(router).await;

    let request = proxy
        .request(Method::GET, "Web.test:8080", "/headers")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("connection", "x-secret")
        .header("x-secret", "hop")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eDp5")
        .header("te", "trailers")
        .header("x-custom", "kept")
        .body(Full::default())
        .expect("request");
    let reply = read_reply(proxy.send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK);

    let seen = reply.header_lines();
    let value = |name: &str| -> Vec<&str> {
        seen.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(value("host"), ["Web.test:8080"], "{seen:?}");
    // A client's own X-Forwarded-* are not believed.
    assert_eq!(value("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(value("x-forwarded-proto"), ["http"]);
    assert_eq!(value("x-forwarded-host"), ["Web.test:8080"]);
    assert_eq!(value("x-custom"), ["kept"]);
    for hop in [
        "connection",
        "x-secret",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert!(
            value(hop).is_empty(),
            "{hop} reached the instance: {seen:?}"
        );
    }

    // And on the way back.
    assert_eq!(reply.headers["x-kept"], "yes");
    assert!(!reply.headers.contains_key("x-resp-secret"));
    assert!(!reply.headers.contains_key("keep-alive"));
}

#[tokio::test]
async fn a_request_body_passes_through() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &domains(&["web.test"]), vec![web.backend()]);
    let proxy = TestProxy::start(router).await;

    let sent: String = (0..100_000).map(|i| format!("{i},")).collect();
    let request = proxy
        .request(Method::POST, "web.test", "/echo")
        .body(Full::new(Bytes::from(sent.clone())))
        .expect("request");
    let reply = read_reply(proxy.send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), sent.len());
    assert!(reply.body == sent, "the echoed body differs");
}

#[tokio::test]
async fn every_method_passes_through() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &domains(&["web.test"]), vec![web.backend()]);
    let proxy = TestProxy::start(router).await;

    let purge = Method::from_bytes(b"PURGE").expect("method");
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        purge,
    ] {
        let request = proxy
            .request(method.clone(), "web.test", "/m")
            .body(Full::default())
            .expect("request");
        let reply = read_reply(proxy.send(request).await).await;
        assert_eq!(reply.body, format!("web-1 {method} /m"));
    }
    let head = proxy
        .request(Method::HEAD, "web.test", "/m")
        .body(Full::default())
        .expect("request");
    let reply = read_reply(proxy.send(head).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-backend"], "web-1");
    assert_eq!(reply.body, "");
}

#[tokio::test]
async fn two_instances_share_the_load() {
    let one = TestBackend::start("web-1").await;
    let two = TestBackend::start("web-2").await;
    let router = Router::new();
    router.set_app(
        "web",
        &domains(&["web.test"]),
        vec![one.backend(), two.backend()],
    );
    let proxy = TestProxy::start(router).await;

    for _ in 0..10 {
        assert_eq!(proxy.get("web.test", "/").await.status, StatusCode::OK);
    }
    // Idle instances take turns.
    assert_eq!((one.hits(), two.hits()), (5, 5));
}
