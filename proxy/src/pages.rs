//! The responses the proxy writes itself. Every one comes from [`error_page`],
//! so they all look alike: a status, one line of plain text, and no caching.
//!
//! Requests hyper cannot parse (malformed, or headers over
//! `max_header_bytes`) never reach the proxy; hyper answers those itself with
//! 400 or 431 and closes that connection.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, Full};

use crate::error::ProxyError;
use crate::forward::ProxyBody;

/// The response for a request the proxy could not forward.
pub(crate) fn error_page(error: &ProxyError) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(format!("{error}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let ProxyError::NoInstance { .. } = error {
        // An instance is usually on its way (a deploy or a restart).
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
#[path = "pages_tests.rs"]
mod tests;
