//! Forwarding between node proxies: an app with no instance on this node is
//! served through another node's proxy, local instances are preferred, and
//! the hop marker stops a request from crossing nodes twice.

use http::{Method, Request, StatusCode};
use http_body_util::Full;
use reef_proxy::{AppRoute, Backend, Certificates, ProxyConfig, Router};

use crate::support::clients::{h2_client, h2_send, no_body};
use crate::support::tls::{connect_tls, TestCa};
use crate::support::{read_reply, TestBackend, TestProxy};

fn web_domains() -> Vec<String> {
    vec!["web.test".to_owned()]
}

/// Node A runs `web-a`; node B knows the app only through A's proxy.
async fn two_nodes() -> (TestBackend, TestProxy, TestProxy) {
    let instance = TestBackend::start("web-a").await;
    let router_a = Router::new();
    router_a.set_app("web", &web_domains(), vec![instance.backend()]);
    let node_a = TestProxy::start(router_a).await;

    let router_b = Router::new();
    router_b.set_app("web", &web_domains(), Vec::new());
    router_b.set_remote("web", vec![Backend::new("node-a", node_a.addr)]);
    let node_b = TestProxy::start(router_b).await;
    (instance, node_a, node_b)
}

#[tokio::test]
async fn an_app_without_local_instance_is_served_by_another_node() {
    let (instance, _node_a, node_b) = two_nodes().await;
    let request = node_b
        .request(Method::GET, "Web.test", "/headers")
        .header("x-forwarded-for", "203.0.113.9")
        .body(Full::default())
        .expect("request");
    let reply = read_reply(node_b.send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-backend"], "web-a");
    assert_eq!(instance.hits(), 1);

    let seen = reply.header_lines();
    let value = |name: &str| -> Vec<&str> {
        seen.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(value("host"), ["Web.test"], "the original Host is kept");
    // The client, then node B as node A saw it.
    assert_eq!(
        value("x-forwarded-for"),
        ["203.0.113.9, 127.0.0.1, 127.0.0.1"]
    );
    assert_eq!(value("x-forwarded-proto"), ["http"]);
    assert!(
        value("x-reef-hop").is_empty(),
        "the hop marker reached the instance"
    );
    assert_eq!(node_b.router.in_flight("node-a"), 0);
}

#[tokio::test]
async fn a_request_that_crossed_a_node_is_not_forwarded_again() {
    let (instance, _node_a, node_b) = two_nodes().await;
    let request = node_b
        .request(Method::GET, "web.test", "/")
        .header("x-reef-hop", "1")
        .body(Full::default())
        .expect("request");
    let reply = read_reply(node_b.send(request).await).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(instance.hits(), 0);
}

#[tokio::test]
async fn two_nodes_pointing_at_each_other_do_not_loop() {
    let router_a = Router::new();
    let router_b = Router::new();
    router_a.set_app("web", &web_domains(), Vec::new());
    router_b.set_app("web", &web_domains(), Vec::new());
    let node_a = TestProxy::start(router_a.clone()).await;
    let node_b = TestProxy::start(router_b).await;
    router_a.set_remote("web", vec![Backend::new("node-b", node_b.addr)]);
    node_b
        .router
        .set_remote("web", vec![Backend::new("node-a", node_a.addr)]);

    // B forwards to A once; A has no instance and does not send it back.
    let reply = node_b.get("web.test", "/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, "web has no healthy instance right now\n");
    let metrics = router_a.metrics().render();
    assert!(
        metrics.contains("reef_proxy_requests_total{app=\"web\",class=\"5xx\"} 1\n"),
        "node A saw the request exactly once: {metrics}"
    );
}

#[tokio::test]
async fn a_local_instance_is_preferred_over_another_node() {
    let (remote_instance, _node_a, node_b) = two_nodes().await;
    let local = TestBackend::start("web-b").await;
    node_b
        .router
        .set_app("web", &web_domains(), vec![local.backend()]);
    for _ in 0..4 {
        assert_eq!(node_b.get("web.test", "/").await.body, "web-b GET /");
    }
    assert_eq!(remote_instance.hits(), 0);

    // Once the local instance is gone, the other node takes over again.
    node_b.router.set_app("web", &web_domains(), Vec::new());
    assert_eq!(node_b.get("web.test", "/").await.body, "web-a GET /");
}

#[tokio::test]
async fn an_https_request_crossing_nodes_keeps_its_scheme_and_is_not_redirected() {
    // Node A redirects plain HTTP for the app; node B takes HTTPS for it and
    // forwards to A's plain listener.
    let instance = TestBackend::start("web-a").await;
    let router_a = Router::new();
    router_a.set_app_with(
        "web",
        AppRoute {
            domains: web_domains(),
            backends: vec![instance.backend()],
            redirect_https: true,
        },
    );
    let node_a = TestProxy::start(router_a).await;

    let ca = TestCa::new();
    let certs = Certificates::new();
    let issued = ca.issue(&["web.test"]);
    certs
        .set("web.test", &issued.chain_pem, &issued.key_pem)
        .expect("certificate");
    let router_b = Router::new();
    router_b.set_app("web", &web_domains(), Vec::new());
    router_b.set_remote("web", vec![Backend::new("node-a", node_a.addr)]);
    let node_b = TestProxy::start_tls(router_b, ProxyConfig::default(), certs).await;

    let stream = connect_tls(
        node_b.tls_addr.expect("HTTPS listener"),
        "web.test",
        ca.client_config(&[b"h2"]),
    )
    .await
    .expect("handshake");
    let mut client = h2_client(stream).await;
    let request = Request::builder()
        .uri("https://web.test/headers")
        .body(no_body())
        .expect("request");
    let reply = read_reply(h2_send(&mut client, request).await).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers["x-backend"], "web-a");
    let seen = reply.header_lines();
    assert!(
        seen.contains(&("x-forwarded-proto".into(), "https".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("host".into(), "web.test".into())),
        "{seen:?}"
    );

    // A plain request straight to node A is still redirected.
    let direct = node_a.get("web.test", "/").await;
    assert_eq!(direct.status, StatusCode::PERMANENT_REDIRECT);
}
