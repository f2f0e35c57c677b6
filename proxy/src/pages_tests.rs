use super::*;
use http::StatusCode;
use http_body_util::BodyExt;

async fn text(response: Response<ProxyBody>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn each_error_gets_its_status_and_message() {
    let cases = [
        (
            ProxyError::BadHost,
            StatusCode::BAD_REQUEST,
            "the request has no valid Host header\n",
        ),
        (
            ProxyError::UnknownHost {
                host: "a.example".into(),
            },
            StatusCode::NOT_FOUND,
            "no app is deployed at a.example\n",
        ),
        (
            ProxyError::NoInstance { app: "web".into() },
            StatusCode::SERVICE_UNAVAILABLE,
            "web has no healthy instance right now\n",
        ),
        (
            ProxyError::Unreachable { app: "web".into() },
            StatusCode::BAD_GATEWAY,
            "web: instance did not answer\n",
        ),
        (
            ProxyError::TimedOut { app: "web".into() },
            StatusCode::GATEWAY_TIMEOUT,
            "web: instance did not answer in time\n",
        ),
        (
            ProxyError::BodyTooLarge { limit: 10 },
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is larger than 10 bytes\n",
        ),
        (
            ProxyError::BodyStalled,
            StatusCode::REQUEST_TIMEOUT,
            "the request body stopped arriving\n",
        ),
        (
            ProxyError::ShuttingDown,
            StatusCode::SERVICE_UNAVAILABLE,
            "the proxy is shutting down\n",
        ),
    ];
    for (error, status, message) in cases {
        let response = error_page(&error, Version::HTTP_11);
        assert_eq!(response.status(), status);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            response.headers().contains_key(RETRY_AFTER),
            matches!(error, ProxyError::NoInstance { .. })
        );
        assert_eq!(text(response).await, message);
    }
}

#[test]
fn no_instance_asks_to_retry_in_a_second() {
    let response = error_page(
        &ProxyError::NoInstance { app: "web".into() },
        Version::HTTP_11,
    );
    assert_eq!(response.headers()[RETRY_AFTER], "1");
}

#[test]
fn an_unread_body_closes_an_http1_connection_only() {
    let error = ProxyError::BodyTooLarge { limit: 1 };
    assert_eq!(
        error_page(&error, Version::HTTP_11).headers()[CONNECTION],
        "close"
    );
    assert!(!error_page(&error, Version::HTTP_2)
        .headers()
        .contains_key(CONNECTION));
    let kept = ProxyError::UnknownHost {
        host: "a.example".into(),
    };
    assert!(!error_page(&kept, Version::HTTP_11)
        .headers()
        .contains_key(CONNECTION));
}
