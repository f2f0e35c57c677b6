use super::*;

fn request(version: Version, headers: &[(&'static str, &'static str)]) -> Request<()> {
    let mut builder = Request::builder().uri("/ws").version(version);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("request")
}

#[test]
fn an_upgrade_needs_both_headers_on_http1() {
    assert!(is_upgrade(&request(
        Version::HTTP_11,
        &[("connection", "Upgrade"), ("upgrade", "websocket")]
    )));
    assert!(is_upgrade(&request(
        Version::HTTP_11,
        &[
            ("connection", "keep-alive, upgrade"),
            ("upgrade", "websocket")
        ]
    )));
    assert!(!is_upgrade(&request(
        Version::HTTP_11,
        &[("upgrade", "websocket")]
    )));
    assert!(!is_upgrade(&request(
        Version::HTTP_11,
        &[("connection", "upgrade")]
    )));
    assert!(!is_upgrade(&request(
        Version::HTTP_11,
        &[("connection", "upgraded"), ("upgrade", "websocket")]
    )));
    assert!(!is_upgrade(&request(
        Version::HTTP_2,
        &[("connection", "upgrade"), ("upgrade", "websocket")]
    )));
}

#[test]
fn the_upgrade_headers_are_put_back() {
    let mut headers = HeaderMap::new();
    keep_upgrade_headers(&mut headers, HeaderValue::from_static("websocket"));
    assert_eq!(headers[CONNECTION], "upgrade");
    assert_eq!(headers[UPGRADE], "websocket");
}
