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

/// The same response as [`error_page`] for an HTTP/1.1 client, written out
/// whole, for the fast path to send as it is. `close`: the connection ends
/// after it in any case.
pub(crate) fn error_bytes(error: &ProxyError, close: bool) -> Vec<u8> {
    let page = error_page(error, Version::HTTP_11);
    let message = format!("{error}\n");
    let status = page.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        message.len()
    )
    .into_bytes();
    for (name, value) in page.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close && !error.ends_connection() {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(message.as_bytes());
    out
}

#[cfg(test)]
#[path = "pages_tests.rs"]
mod tests;
