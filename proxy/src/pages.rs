//! The responses the proxy writes itself. Every one comes from [`error_page`],
//! so they all look alike: a status, one line of plain text, and no caching.
//!
//! Requests hyper cannot parse (malformed, or headers over
//! `max_header_bytes`) never reach the proxy; hyper answers those itself with
//! 400 or 431 and closes that connection.

use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, Version};

use crate::body::{full, ProxyBody};
use crate::error::ProxyError;

/// The response for a request the proxy could not forward, to a client
/// speaking `version`.
pub(crate) fn error_page(error: &ProxyError, version: Version) -> Response<ProxyBody> {
    let mut response = Response::new(full(format!("{error}\n")));
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
    // HTTP/2 ends just the stream (and forbids the header); HTTP/1 must say
    // the connection is done so the client does not send more on it.
    if error.ends_connection() && version <= Version::HTTP_11 {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
#[path = "pages_tests.rs"]
mod tests;
