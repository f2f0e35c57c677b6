//! Redirecting plain HTTP to HTTPS for the apps that ask for it: 308, so the
//! client repeats the same method with the same body, to the same host, path
//! and query on the HTTPS port.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use http::uri::PathAndQuery;
use http::{HeaderValue, Response, StatusCode, Uri};

use crate::body::{full, ProxyBody};

/// Where a plain-HTTP request for `uri` on `host` (normalized, without port)
/// is sent: `https://host[:https_port]/path?query`, the port left out when it
/// is 443. None when that is not a valid header value.
pub(crate) fn https_location(host: &str, https_port: u16, uri: &Uri) -> Option<HeaderValue> {
    let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let path = if path.starts_with('/') { path } else { "/" };
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    HeaderValue::from_str(&location).ok()
}

/// The 308 response pointing at `location`.
pub(crate) fn redirect(location: HeaderValue) -> Response<ProxyBody> {
    let mut response = Response::new(full("this app is served over HTTPS\n"));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    let headers = response.headers_mut();
    headers.insert(LOCATION, location);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    // The app may turn its redirect off again; a cached one would outlive that.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
#[path = "redirect_tests.rs"]
mod tests;
