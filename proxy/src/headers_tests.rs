use super::*;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

#[test]
fn hop_by_hop_headers_and_those_connection_names_are_removed() {
    let mut map = headers(&[
        ("connection", "keep-alive, X-Secret"),
        ("connection", "x-other"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("proxy-authenticate", "Basic"),
        ("proxy-authorization", "Basic eDp5"),
        ("x-secret", "1"),
        ("x-other", "2"),
        ("content-type", "text/plain"),
        ("authorization", "Bearer kept"),
    ]);
    strip_hop_by_hop(&mut map);
    let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
    assert_eq!(left, ["content-type", "authorization"]);
}

#[test]
fn a_connection_header_naming_garbage_is_harmless() {
    let mut map = headers(&[("connection", ", ,bad name,"), ("x-kept", "1")]);
    strip_hop_by_hop(&mut map);
    assert_eq!(map.len(), 1);
    assert!(map.contains_key("x-kept"));
}

#[test]
fn forwarded_headers_are_set() {
    let mut map = HeaderMap::new();
    set_forwarded(
        &mut map,
        "192.0.2.7".parse().expect("ip"),
        Side::Plain,
        "App.example:8080",
    );
    assert_eq!(map[X_FORWARDED_FOR], "192.0.2.7");
    assert_eq!(map[X_FORWARDED_PROTO], "http");
    assert_eq!(map[X_FORWARDED_HOST], "App.example:8080");
}

fn spoofed() -> HeaderMap {
    headers(&[
        ("x-forwarded-for", "203.0.113.1"),
        ("x-forwarded-for", "198.51.100.2, 10.0.0.3"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "spoofed.example"),
    ])
}

#[test]
fn what_a_client_sent_is_replaced_on_the_public_listeners() {
    for (side, scheme) in [(Side::Plain, "http"), (Side::Tls, "https")] {
        let mut map = spoofed();
        set_forwarded(
            &mut map,
            "::ffff:192.0.2.7".parse().expect("ip"),
            side,
            "a.example",
        );
        let chain: Vec<_> = map.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(chain, ["192.0.2.7"], "{side:?}");
        let proto: Vec<_> = map.get_all(X_FORWARDED_PROTO).iter().collect();
        assert_eq!(proto, [scheme], "{side:?}");
        assert_eq!(map[X_FORWARDED_HOST], "a.example");
    }
}

#[test]
fn another_nodes_word_is_kept_on_the_peer_listener() {
    let mut map = spoofed();
    set_forwarded(
        &mut map,
        "10.0.0.9".parse().expect("ip"),
        Side::Peer { tls: true },
        "a.example",
    );
    let chain: Vec<_> = map.get_all(X_FORWARDED_FOR).iter().collect();
    assert_eq!(chain, ["203.0.113.1", "198.51.100.2, 10.0.0.3"]);
    assert_eq!(map[X_FORWARDED_PROTO], "http");
    // A node that said nothing: the peer's address and HTTPS.
    let mut map = HeaderMap::new();
    set_forwarded(
        &mut map,
        "10.0.0.9".parse().expect("ip"),
        Side::Peer { tls: true },
        "a.example",
    );
    assert_eq!(map[X_FORWARDED_FOR], "10.0.0.9");
    assert_eq!(map[X_FORWARDED_PROTO], "https");
}

#[test]
fn only_known_forwarded_schemes_are_read() {
    assert_eq!(
        forwarded_scheme(&headers(&[("x-forwarded-proto", "https")])),
        Some("https")
    );
    assert_eq!(
        forwarded_scheme(&headers(&[("x-forwarded-proto", "http")])),
        Some("http")
    );
    assert_eq!(
        forwarded_scheme(&headers(&[("x-forwarded-proto", "gopher")])),
        None
    );
    assert_eq!(forwarded_scheme(&HeaderMap::new()), None);
}
