use proptest::prelude::*;

use super::*;

fn parsed(bytes: &[u8]) -> Option<(usize, RequestBody, bool, String, String)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse(bytes, &mut headers) {
        Parsed::Ready(head) => Some((
            head.len,
            head.body,
            head.close,
            head.host.to_owned(),
            head.name.into_owned(),
        )),
        Parsed::Partial | Parsed::Fallback => None,
    }
}

fn is_fallback(bytes: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    matches!(parse(bytes, &mut headers), Parsed::Fallback)
}

fn rewritten(bytes: &[u8], forwarding: &Forwarding<'_>) -> String {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Parsed::Ready(head) = parse(bytes, &mut headers) else {
        panic!("not taken: {}", String::from_utf8_lossy(bytes));
    };
    let mut out = Vec::new();
    write_upstream(&mut out, &head, forwarding);
    String::from_utf8(out).expect("utf-8")
}

const LOCAL: Forwarding<'static> = Forwarding {
    client_ip: "192.0.2.7",
    scheme: "http",
    keep_chain: false,
};

#[test]
fn a_plain_get_is_taken() {
    let request = b"GET /a?b=1 HTTP/1.1\r\nHost: Web.Example.:8080\r\n\r\nGET";
    let (len, body, close, host, name) = parsed(request).expect("taken");
    assert_eq!(len, request.len() - 3);
    assert_eq!(body, RequestBody::Empty);
    assert!(!close);
    assert_eq!(host, "Web.Example.:8080");
    assert_eq!(name, "web.example");
}

#[test]
fn bodies_are_framed_by_length_or_chunks() {
    let length = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n";
    assert_eq!(parsed(length).expect("taken").1, RequestBody::Length(12));
    let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
    assert_eq!(parsed(chunked).expect("taken").1, RequestBody::Chunked);
    let close = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n";
    assert!(parsed(close).expect("taken").2);
}

#[test]
fn an_incomplete_head_waits_for_more() {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    assert!(matches!(
        parse(b"GET / HTTP/1.1\r\nHost: a\r\n", &mut headers),
        Parsed::Partial
    ));
}

#[test]
fn anything_unusual_goes_to_the_full_path() {
    let cases: [&[u8]; 16] = [
        b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
    ];
    for case in cases {
        assert!(is_fallback(case), "{}", String::from_utf8_lossy(case));
    }
}

const SPOOFED: &[u8] =
    b"POST /p?q HTTP/1.1\r\nHost: Web.test\r\nConnection: keep-alive, X-Secret\r\n\
    X-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: x\r\n\
    X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\nX-Forwarded-Proto: https\r\n\
    X-Forwarded-Host: evil\r\nTransfer-Encoding: chunked\r\nX-Kept: yes\r\n\r\n";

#[test]
fn the_upstream_head_drops_hop_by_hop_headers_and_replaces_the_clients_forwarding() {
    let head = rewritten(SPOOFED, &LOCAL);
    assert_eq!(
        head,
        "POST /p?q HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-Kept: yes\r\nhost: Web.test\r\n\
         x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\n\
         x-forwarded-host: Web.test\r\n\r\n"
    );
}

#[test]
fn another_nodes_chain_is_kept() {
    let peer = Forwarding {
        client_ip: "10.0.0.9",
        scheme: "https",
        keep_chain: true,
    };
    let head = rewritten(SPOOFED, &peer);
    assert!(head.ends_with(
        "x-forwarded-for: 10.0.0.1, 10.0.0.2\r\nx-forwarded-proto: https\r\nx-forwarded-host: Web.test\r\n\r\n"
    ), "{head}");
    let head = rewritten(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &peer);
    assert!(
        head.ends_with(
            "x-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: https\r\nx-forwarded-host: a\r\n\r\n"
        ),
        "{head}"
    );
}

#[test]
fn content_length_is_digits_only() {
    assert_eq!(parse_length(b" 42 "), Some(42));
    assert_eq!(
        parse_length(b"999999999999999999"),
        Some(999_999_999_999_999_999)
    );
    for bad in [
        &b""[..],
        b"-1",
        b"1,1",
        b"0x10",
        b"1 2",
        b"9999999999999999999",
    ] {
        assert_eq!(parse_length(bad), None, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn ipv4_mapped_clients_are_listed_as_ipv4() {
    let mapped: std::net::IpAddr = "::ffff:192.0.2.9".parse().expect("ip");
    assert_eq!(client_ip(mapped), "192.0.2.9");
}

proptest! {
    #[test]
    fn any_bytes_parse_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        if let Parsed::Ready(head) = parse(&bytes, &mut headers) {
            prop_assert!(head.len <= bytes.len());
            let mut out = Vec::new();
            write_upstream(&mut out, &head, &LOCAL);
        }
    }

    #[test]
    fn a_taken_request_is_rewritten_into_a_valid_head_without_hop_headers(
        method in "(GET|POST|PUT|DELETE|PATCH|OPTIONS)",
        path in "/[a-zA-Z0-9/?=&._-]{0,30}",
        host in "[a-zA-Z0-9.-]{1,20}(:[0-9]{1,4})?",
        extra in prop::collection::vec(
            ("(X-[A-Za-z]{1,8}|Connection|Keep-Alive|TE|Upgrade-Insecure|Proxy-Authorization|X-Forwarded-For|Accept)",
             "[ -~]{0,20}"),
            0..8),
    ) {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        for (name, value) in &extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Parsed::Ready(head) = parse(request.as_bytes(), &mut headers) else {
            return Ok(());
        };
        let mut out = Vec::new();
        write_upstream(&mut out, &head, &LOCAL);
        let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut upstream = httparse::Request::new(&mut again);
        let status = upstream.parse(&out).expect("the upstream head parses");
        prop_assert_eq!(status, httparse::Status::Complete(out.len()));
        prop_assert_eq!(upstream.method, Some(method.as_str()));
        prop_assert_eq!(upstream.path, Some(path.as_str()));
        let hosts = upstream.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host")).count();
        prop_assert_eq!(hosts, 1);
        for header in upstream.headers.iter() {
            prop_assert!(!hop_by_hop(header.name), "{} kept", header.name);
        }
    }
}
