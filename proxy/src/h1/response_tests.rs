use proptest::prelude::*;

use super::*;

fn head(bytes: &[u8], head_request: bool, close: bool) -> (ResponseHead, String) {
    let mut out = Vec::new();
    let head = parse(bytes, head_request, close, &mut out)
        .expect("valid")
        .expect("complete");
    (head, String::from_utf8(out).expect("utf-8"))
}

#[test]
fn a_length_framed_response_keeps_both_connections() {
    let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\nhello";
    let (parsed, out) = head(bytes, false, false);
    assert_eq!(
        parsed,
        ResponseHead {
            len: bytes.len() - "hello".len(),
            status: 200,
            body: ResponseBody::Length(5),
            reusable: true,
            closes_client: false,
        }
    );
    assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
}

#[test]
fn framing_follows_rfc_9112() {
    let cases: [(&[u8], bool, ResponseBody); 7] = [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            ResponseBody::Chunked,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            false,
            ResponseBody::UntilClose,
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", false, ResponseBody::UntilClose),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
            true,
            ResponseBody::Empty,
        ),
        (
            b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
            false,
            ResponseBody::Empty,
        ),
        (
            b"HTTP/1.1 304 Not Modified\r\n\r\n",
            false,
            ResponseBody::Empty,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            false,
            ResponseBody::Empty,
        ),
    ];
    for (bytes, head_request, body) in cases {
        assert_eq!(
            head(bytes, head_request, false).0.body,
            body,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn a_body_until_close_closes_the_client_and_is_not_reused() {
    let (parsed, out) = head(b"HTTP/1.0 200 OK\r\nX-A: b\r\n\r\n", false, false);
    assert!(parsed.closes_client && !parsed.reusable);
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\nX-A: b\r\nconnection: close\r\n\r\n"
    );
}

#[test]
fn the_upstream_closing_is_not_passed_on_but_stops_reuse() {
    let (parsed, out) = head(
        b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n",
        false,
        false,
    );
    assert!(!parsed.reusable && !parsed.closes_client);
    assert_eq!(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn a_content_length_next_to_a_coding_is_dropped() {
    let (_, out) = head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
        false,
        true,
    );
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nconnection: close\r\n\r\n"
    );
}

#[test]
fn informational_responses_pass_without_closing() {
    let (parsed, out) = head(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
        false,
        true,
    );
    assert_eq!(parsed.status, 103);
    assert!(!parsed.closes_client);
    assert_eq!(out, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
}

#[test]
fn bad_responses_are_refused() {
    let mut out = Vec::new();
    let cases: [(&[u8], BadResponse); 4] = [
        (
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            BadResponse::UnaskedSwitch,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            BadResponse::BadLength,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            BadResponse::BadLength,
        ),
        (b"HTTP/9 200\r\n\r\n", BadResponse::Malformed),
    ];
    for (bytes, error) in cases {
        assert_eq!(parse(bytes, false, false, &mut out), Err(error));
    }
    assert!(out.is_empty());
    assert_eq!(
        parse(b"HTTP/1.1 200 OK\r\n", false, false, &mut out),
        Ok(None)
    );
}

proptest! {
    #[test]
    fn any_bytes_parse_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut out = Vec::new();
        if let Ok(Some(parsed)) = parse(&bytes, false, false, &mut out) {
            prop_assert!(parsed.len <= bytes.len());
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut again = httparse::Response::new(&mut headers);
            prop_assert!(matches!(again.parse(&out), Ok(httparse::Status::Complete(_))));
        }
    }
}
