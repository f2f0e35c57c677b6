//! What clients can speak to the proxy: HTTP/2 over TLS (ALPN), HTTP/1.1 over
//! TLS, h2c with prior knowledge, and the certificate chosen by SNI.

use http::{Method, Request, StatusCode, Version};
use http_body_util::BodyExt;
use reef_proxy::{Certificates, ProxyConfig, Router};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;

use crate::support::clients::{h1_client, h2_client, h2_send, no_body, ClientBody};
use crate::support::tls::{alpn, connect_tls, presented, TestCa};
use crate::support::{read_reply, within, TestBackend, TestProxy};

fn domains(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// A request for `path` on `host` over HTTP/2 (the authority names the host).
fn h2_request(scheme: &str, host: &str, path: &str) -> Request<ClientBody> {
    Request::builder()
        .method(Method::GET)
        .uri(format!("{scheme}://{host}{path}"))
        .body(no_body())
        .expect("request")
}

/// One app with its host and the certificate served for it.
struct Site {
    host: String,
    backend: TestBackend,
    leaf: CertificateDer<'static>,
}

/// Two apps on two names, each with its certificate, behind one HTTPS listener.
async fn two_sites() -> (TestCa, [Site; 2], TestProxy) {
    let ca = TestCa::new();
    let certs = Certificates::new();
    let router = Router::new();
    let mut sites = Vec::new();
    for name in ["a", "b"] {
        let host = format!("{name}.test");
        let backend = TestBackend::start(&format!("{name}-1")).await;
        router.set_app(name, &domains(&[&host]), vec![backend.backend()]);
        let issued = ca.issue(&[&host]);
        certs
            .set(&host, &issued.chain_pem, &issued.key_pem)
            .expect("a valid certificate");
        sites.push(Site {
            host,
            backend,
            leaf: issued.leaf,
        });
    }
    let proxy = TestProxy::start_tls(router, ProxyConfig::default(), certs).await;
    let Ok(sites) = <[Site; 2]>::try_from(sites) else {
        unreachable!("two sites were made")
    };
    (ca, sites, proxy)
}

#[tokio::test]
async fn http2_over_tls_is_negotiated_and_reaches_the_instance() {
    let (ca, [a, _], proxy) = two_sites().await;
    let tls_addr = proxy.tls_addr.expect("an HTTPS listener");
    let stream = connect_tls(tls_addr, &a.host, ca.client_config(&[b"h2", b"http/1.1"]))
        .await
        .expect("handshake");
    assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]));
    let mut client = h2_client(stream).await;
    let response = h2_send(&mut client, h2_request("https", &a.host, "/headers")).await;
    assert_eq!(response.version(), Version::HTTP_2);
    let reply = read_reply(response).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-backend"], "a-1");
    let seen = reply.header_lines();
    assert!(
        seen.contains(&("x-forwarded-proto".into(), "https".into())),
        "{seen:?}"
    );
    assert!(seen.contains(&("host".into(), "a.test".into())), "{seen:?}");
}

#[tokio::test]
async fn http1_over_tls_is_negotiated_too() {
    let (ca, [_, b], proxy) = two_sites().await;
    let tls_addr = proxy.tls_addr.expect("an HTTPS listener");
    let stream = connect_tls(tls_addr, &b.host, ca.client_config(&[b"http/1.1"]))
        .await
        .expect("handshake");
    assert_eq!(alpn(&stream).as_deref(), Some(&b"http/1.1"[..]));
    let mut client = h1_client(stream).await;
    let request = Request::builder()
        .uri("/x")
        .header("host", &b.host)
        .body(no_body())
        .expect("request");
    let response = within(client.send_request(request))
        .await
        .expect("response");
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(read_reply(response).await.body, "b-1 GET /x");
}

#[tokio::test]
async fn each_name_gets_its_own_certificate() {
    let (ca, sites, proxy) = two_sites().await;
    let tls_addr = proxy.tls_addr.expect("an HTTPS listener");
    for site in &sites {
        let stream = connect_tls(tls_addr, &site.host, ca.client_config(&[b"h2"]))
            .await
            .expect("handshake");
        assert!(
            presented(&stream) == site.leaf,
            "wrong certificate for {}",
            site.host
        );
        let mut client = h2_client(stream).await;
        let response = h2_send(&mut client, h2_request("https", &site.host, "/")).await;
        let reply = read_reply(response).await;
        assert_eq!(reply.headers["x-backend"], site.backend.name.as_str());
    }
}

#[tokio::test]
async fn a_name_without_certificate_fails_only_its_handshake() {
    let (ca, [a, _], proxy) = two_sites().await;
    let tls_addr = proxy.tls_addr.expect("an HTTPS listener");
    let unknown = connect_tls(tls_addr, "unknown.test", ca.client_config(&[b"h2"])).await;
    assert!(
        unknown.is_err(),
        "a handshake for a name without certificate succeeded"
    );

    // A connection that was open before, and a new one, are both served.
    let stream = connect_tls(tls_addr, &a.host, ca.client_config(&[b"h2"]))
        .await
        .expect("handshake");
    let mut client = h2_client(stream).await;
    let response = h2_send(&mut client, h2_request("https", &a.host, "/")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let again = connect_tls(tls_addr, "unknown.test", ca.client_config(&[b"h2"])).await;
    assert!(again.is_err());
    let response = h2_send(&mut client, h2_request("https", &a.host, "/")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = proxy.router.metrics().render();
    assert!(
        metrics.contains("reef_proxy_tls_handshake_failures_total 2\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn h2c_with_prior_knowledge_reaches_the_instance() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &domains(&["web.test"]), vec![web.backend()]);
    let proxy = TestProxy::start(router).await;

    let tcp = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    let mut client = h2_client(tcp).await;
    let response = h2_send(&mut client, h2_request("http", "web.test", "/headers")).await;
    assert_eq!(response.version(), Version::HTTP_2);
    let reply = read_reply(response).await;
    assert_eq!(reply.headers["x-backend"], "web-1");
    let seen = reply.header_lines();
    assert!(
        seen.contains(&("x-forwarded-proto".into(), "http".into())),
        "{seen:?}"
    );
}

#[tokio::test]
async fn one_http2_connection_carries_requests_side_by_side() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &domains(&["web.test"]), vec![web.backend()]);
    let proxy = TestProxy::start(router.clone()).await;

    let tcp = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    let client = h2_client(tcp).await;
    let held = |mut client: hyper::client::conn::http2::SendRequest<_>| async move {
        let response = h2_send(&mut client, h2_request("http", "web.test", "/hold")).await;
        let body = within(response.into_body().collect()).await.expect("body");
        body.to_bytes()
    };
    let first = tokio::spawn(held(client.clone()));
    let second = tokio::spawn(held(client.clone()));
    // Both are at the instance at once, on one connection.
    web.wait_held(2).await;
    assert_eq!(router.in_flight("web-1"), 2);
    web.release();
    web.release();
    assert_eq!(within(first).await.expect("first"), "web-1 held");
    assert_eq!(within(second).await.expect("second"), "web-1 held");
}
