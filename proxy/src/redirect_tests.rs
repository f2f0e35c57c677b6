use super::*;

fn location(host: &str, port: u16, uri: &str) -> String {
    let uri: Uri = uri.parse().expect("uri");
    https_location(host, port, &uri)
        .expect("a location")
        .to_str()
        .expect("ascii")
        .to_owned()
}

#[test]
fn path_and_query_are_kept() {
    assert_eq!(
        location("web.example", 443, "/a/b?x=1&y=%20"),
        "https://web.example/a/b?x=1&y=%20"
    );
    assert_eq!(location("web.example", 443, "/"), "https://web.example/");
}

#[test]
fn a_port_other_than_443_is_named() {
    assert_eq!(
        location("web.example", 8443, "/p?q"),
        "https://web.example:8443/p?q"
    );
}

#[test]
fn an_absolute_form_request_keeps_its_path() {
    assert_eq!(
        location("web.example", 443, "http://web.example:80/p?q"),
        "https://web.example/p?q"
    );
    assert_eq!(
        location("web.example", 443, "http://web.example"),
        "https://web.example/"
    );
}

#[test]
fn asterisk_form_goes_to_the_root() {
    assert_eq!(location("web.example", 443, "*"), "https://web.example/");
}

#[test]
fn the_redirect_is_308_with_its_location() {
    let response = redirect(HeaderValue::from_static("https://web.example/"));
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(response.headers()[LOCATION], "https://web.example/");
}
