//! Plain HTTP redirected to HTTPS for the apps that ask, and ACME HTTP-01
//! challenges answered on plain HTTP for every host.

use http::{Method, Request, StatusCode};
use reef_proxy::{AppRoute, Certificates, ProxyConfig, Router};

use crate::support::clients::{h2_client, h2_send, no_body};
use crate::support::tls::{connect_tls, TestCa};
use crate::support::{read_reply, TestBackend, TestProxy};

/// `web.test` redirects to HTTPS on port 8443; `open.test` does not.
async fn redirecting() -> (TestBackend, TestBackend, Router) {
    let web = TestBackend::start("web-1").await;
    let open = TestBackend::start("open-1").await;
    let router = Router::new();
    router.set_app_with(
        "web",
        AppRoute {
            domains: vec!["web.test".to_owned()],
            backends: vec![web.backend()],
            redirect_https: true,
            ..AppRoute::default()
        },
    );
    router.set_app("open", &["open.test".to_owned()], vec![open.backend()]);
    (web, open, router)
}

fn https_on_8443() -> ProxyConfig {
    ProxyConfig {
        https_port: 8443,
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn plain_http_is_redirected_with_path_and_query_kept() {
    let (web, open, router) = redirecting().await;
    let proxy = TestProxy::start_with(router, https_on_8443()).await;

    let reply = proxy.get("Web.test:8080", "/a/b?x=1&y=two").await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        reply.headers["location"],
        "https://web.test:8443/a/b?x=1&y=two"
    );
    // Every method, so a POST is repeated as a POST over HTTPS.
    let post = proxy
        .request(Method::POST, "web.test", "/form")
        .body(Default::default())
        .expect("request");
    let reply = read_reply(proxy.send(post).await).await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(reply.headers["location"], "https://web.test:8443/form");
    assert_eq!(web.hits(), 0);

    // An app without the redirect is served over plain HTTP.
    assert_eq!(proxy.get("open.test", "/").await.body, "open-1 GET /");
    assert_eq!(open.hits(), 1);
}

#[tokio::test]
async fn https_requests_of_a_redirecting_app_are_served() {
    let (web, _open, router) = redirecting().await;
    let ca = TestCa::new();
    let certs = Certificates::new();
    let issued = ca.issue(&["web.test"]);
    certs
        .set("web.test", &issued.chain_pem, &issued.key_pem)
        .expect("certificate");
    let proxy = TestProxy::start_tls(router, https_on_8443(), certs).await;

    let stream = connect_tls(
        proxy.tls_addr.expect("HTTPS listener"),
        "web.test",
        ca.client_config(&[b"h2"]),
    )
    .await
    .expect("handshake");
    let mut client = h2_client(stream).await;
    let request = Request::builder()
        .uri("https://web.test/page")
        .body(no_body())
        .expect("request");
    let reply = read_reply(h2_send(&mut client, request).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "web-1 GET /page");
    assert_eq!(web.hits(), 1);
}

#[tokio::test]
async fn acme_challenges_are_answered_for_any_host_before_the_redirect() {
    let (web, _open, router) = redirecting().await;
    router
        .challenges()
        .insert("tok_EN-1", "tok_EN-1.thumbprint")
        .expect("challenge");
    let proxy = TestProxy::start(router.clone()).await;

    for host in ["web.test", "not-routed.test", "open.test"] {
        let reply = proxy
            .get(host, "/.well-known/acme-challenge/tok_EN-1")
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{host}");
        assert_eq!(reply.body, "tok_EN-1.thumbprint", "{host}");
        assert_eq!(reply.headers["content-type"], "text/plain");
    }
    let unknown = proxy
        .get("web.test", "/.well-known/acme-challenge/other")
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    assert!(router.challenges().remove("tok_EN-1"));
    let removed = proxy
        .get("web.test", "/.well-known/acme-challenge/tok_EN-1")
        .await;
    assert_eq!(removed.status, StatusCode::NOT_FOUND);
    assert_eq!(web.hits(), 0, "challenges never reach the app");
}
