use super::*;
use crate::headers::{X_FORWARDED_FOR, X_FORWARDED_PROTO};
use crate::host::requested_host;

fn backend() -> Backend {
    Backend::new("web-1", SocketAddr::from(([127, 0, 0, 1], 9000)))
}

fn rewrite(request: Request<()>, side: Side) -> Request<()> {
    let host = requested_host(&request).expect("a host");
    let backend = backend();
    let target = Target {
        backend: &backend,
        host: &host,
        client: "192.0.2.7:5555".parse().expect("addr"),
        side,
    };
    upstream_request(request, &target)
}

#[test]
fn a_request_is_addressed_to_its_backend_over_http1() {
    let request = Request::builder()
        .uri("/a/b?c=d")
        .header(HOST, "Web.example:8080")
        .header("connection", "close")
        .body(())
        .expect("request");
    let sent = rewrite(request, Side::Plain);
    assert_eq!(sent.uri(), "http://127.0.0.1:9000/a/b?c=d");
    assert_eq!(sent.version(), Version::HTTP_11);
    assert_eq!(sent.headers()[HOST], "Web.example:8080");
    assert_eq!(sent.headers()[X_FORWARDED_FOR], "192.0.2.7");
    assert_eq!(sent.headers()[X_FORWARDED_PROTO], "http");
    assert!(!sent.headers().contains_key("connection"));
}

#[test]
fn an_http2_request_gets_its_authority_as_host() {
    let request = Request::builder()
        .version(Version::HTTP_2)
        .uri("https://web.example/path")
        .header(HOST, "other.example")
        .body(())
        .expect("request");
    let sent = rewrite(request, Side::Tls);
    assert_eq!(sent.uri(), "http://127.0.0.1:9000/path");
    assert_eq!(sent.version(), Version::HTTP_11);
    assert_eq!(sent.headers()[HOST], "web.example");
    assert_eq!(sent.headers()[X_FORWARDED_PROTO], "https");
}

#[test]
fn only_another_nodes_forwarding_headers_are_kept() {
    let request = || {
        Request::builder()
            .uri("/")
            .header(HOST, "web.example")
            .header("x-forwarded-for", "203.0.113.1")
            .header("x-forwarded-proto", "http")
            .body(())
            .expect("request")
    };
    let sent = rewrite(request(), Side::Tls);
    assert_eq!(sent.headers()[X_FORWARDED_FOR], "192.0.2.7");
    assert_eq!(sent.headers()[X_FORWARDED_PROTO], "https");
    let sent = rewrite(request(), Side::Peer { tls: true });
    assert_eq!(sent.headers()[HOST], "web.example");
    assert_eq!(sent.headers()[X_FORWARDED_FOR], "203.0.113.1");
    assert_eq!(sent.headers()[X_FORWARDED_PROTO], "http");
}

#[test]
fn an_error_chain_names_every_cause() {
    #[derive(Debug, thiserror::Error)]
    #[error("connect failed")]
    struct Outer(#[source] std::io::Error);
    let chained = Outer(std::io::Error::other("refused"));
    assert_eq!(error_chain(&chained), "connect failed: refused");
}
