//! The dashboard's HTTP answers: bodies, the headers every page carries,
//! and the checks on where a request came from.

use super::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use reef_proto::api::{ApiError, ApiErrorKind};

/// Whether the request came through a TLS proxy.
pub(crate) fn is_tls(headers: &hyper::HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes() == b"https")
}

/// Refuses a request whose browser says it came from another site.
pub(crate) fn same_origin(headers: &hyper::HeaderMap) -> Result<(), &'static str> {
    if let (Some(origin), Some(host)) = (headers.get("origin"), headers.get("host")) {
        let origin = origin.to_str().unwrap_or_default();
        let host = host.to_str().unwrap_or_default();
        if origin != format!("http://{host}") && origin != format!("https://{host}") {
            return Err("the request came from another site");
        }
    }
    Ok(())
}

/// An answer with `body`, never cached, not to be sniffed or framed, and
/// allowed only the dashboard's own scripts and styles.
pub(crate) fn full(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", header(content_type));
    headers.insert("cache-control", header("no-store"));
    headers.insert("x-content-type-options", header("nosniff"));
    headers.insert("x-frame-options", header("DENY"));
    headers.insert(
        "content-security-policy",
        header("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
    );
    response
}

pub(crate) fn header(value: &str) -> hyper::header::HeaderValue {
    hyper::header::HeaderValue::from_str(value)
        .unwrap_or_else(|_| hyper::header::HeaderValue::from_static(""))
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    full(status, "application/json", value.to_string())
}

/// The HTTP status an API error is answered with.
pub(crate) fn status_of(error: &ApiError) -> StatusCode {
    match error.kind {
        ApiErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ApiErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ApiErrorKind::NotFound => StatusCode::NOT_FOUND,
        ApiErrorKind::Unavailable | ApiErrorKind::Internal => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> hyper::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    hyper::header::HeaderName::from_static(k),
                    hyper::header::HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn only_the_dashboards_own_origin_passes() {
        let host = ("host", "127.0.0.1:7480");
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:7480")])).is_ok());
        assert!(same_origin(&headers(&[host, ("origin", "https://127.0.0.1:7480")])).is_ok());
        assert!(
            same_origin(&headers(&[host])).is_ok(),
            "no Origin: SameSite and the form token decide"
        );
        assert!(same_origin(&headers(&[host, ("origin", "http://evil.example")])).is_err());
        assert!(same_origin(&headers(&[host, ("origin", "null")])).is_err());
    }

    #[test]
    fn refusals_keep_their_kind_as_a_status() {
        let status = |kind| status_of(&ApiError::new(kind, "x"));
        assert_eq!(status(ApiErrorKind::Forbidden), StatusCode::FORBIDDEN);
        assert_eq!(status(ApiErrorKind::Invalid), StatusCode::BAD_REQUEST);
        assert_eq!(status(ApiErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status(ApiErrorKind::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
