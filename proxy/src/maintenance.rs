//! The answer for an app in maintenance: `503 Service Unavailable` with the
//! operator's page, its content type, a `Retry-After` and no caching, on
//! every node, whether or not the node runs the app. Nothing is forwarded,
//! so the app's instances see no request while they keep running.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

use crate::body::{full, ProxyBody};

/// What an app in maintenance answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenancePage {
    /// The page's `Content-Type`; a value that cannot be a header value is
    /// served as `application/octet-stream`.
    pub content_type: String,
    pub body: Bytes,
    /// The `Retry-After` value, in seconds.
    pub retry_after_secs: u32,
}

impl MaintenancePage {
    /// The 503 response with this page.
    pub(crate) fn response(&self) -> Response<ProxyBody> {
        let mut response = Response::new(full(self.body.clone()));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = response.headers_mut();
        let content_type = HeaderValue::from_str(&self.content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        headers.insert(CONTENT_TYPE, content_type);
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(RETRY_AFTER, HeaderValue::from(self.retry_after_secs));
        response
    }
}

#[cfg(test)]
#[path = "maintenance_tests.rs"]
mod tests;
