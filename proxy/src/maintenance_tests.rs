use super::*;
use http_body_util::BodyExt;

#[tokio::test]
async fn the_page_is_a_503_with_its_type_a_retry_after_and_no_caching() {
    let page = MaintenancePage {
        content_type: "text/html; charset=utf-8".into(),
        body: Bytes::from_static(b"<p>back soon</p>"),
        retry_after_secs: 120,
    };
    let response = page.response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let headers = response.headers();
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[RETRY_AFTER], "120");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"<p>back soon</p>");
}

#[test]
fn a_content_type_that_is_no_header_value_is_not_sent_as_one() {
    let page = MaintenancePage {
        content_type: "text/html\r\nx-evil: 1".into(),
        body: Bytes::from_static(b"x"),
        retry_after_secs: 1,
    };
    let response = page.response();
    assert_eq!(response.headers()[CONTENT_TYPE], "application/octet-stream");
    assert!(response.headers().get("x-evil").is_none());
}
