use super::*;

fn request_host<B>(request: &Request<B>) -> Option<String> {
    requested_host(request).map(|host| host.name)
}

fn with_host(value: &str) -> Request<()> {
    Request::builder()
        .uri("/path")
        .header(HOST, value)
        .body(())
        .expect("request")
}

#[test]
fn the_host_header_is_normalized() {
    assert_eq!(
        request_host(&with_host("Example.COM")).as_deref(),
        Some("example.com")
    );
    assert_eq!(
        request_host(&with_host("example.com:8080")).as_deref(),
        Some("example.com")
    );
    assert_eq!(
        request_host(&with_host("example.com.")).as_deref(),
        Some("example.com")
    );
    assert_eq!(
        request_host(&with_host("Example.com.:80")).as_deref(),
        Some("example.com")
    );
    assert_eq!(
        request_host(&with_host("[::1]:8080")).as_deref(),
        Some("[::1]")
    );
}

#[test]
fn the_uri_authority_wins_over_the_host_header() {
    let request = Request::builder()
        .uri("http://App.Example:81/x")
        .header(HOST, "other.example")
        .body(())
        .expect("request");
    let host = requested_host(&request).expect("a host");
    assert_eq!(host.name, "app.example");
    assert_eq!(host.authority, "App.Example:81");
}

#[test]
fn a_missing_or_bad_host_is_refused() {
    let none = Request::builder().uri("/").body(()).expect("request");
    assert_eq!(request_host(&none), None);
    for bad in [
        "",
        "user@example.com",
        "exa mple.com",
        "example.com:port",
        ".",
    ] {
        assert_eq!(request_host(&with_host(bad)), None, "{bad:?}");
    }
}

#[test]
fn two_host_headers_are_refused() {
    let request = Request::builder()
        .uri("/")
        .header(HOST, "a.example")
        .header(HOST, "b.example")
        .body(())
        .expect("request");
    assert_eq!(request_host(&request), None);
}

#[test]
fn normalize_lowercases_and_drops_one_trailing_dot() {
    assert_eq!(normalize("WWW.Example.org."), "www.example.org");
    assert_eq!(normalize("example.org"), "example.org");
}
