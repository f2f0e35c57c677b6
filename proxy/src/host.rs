//! Which host a request is for: the URI authority when the request carries
//! one (absolute form), else the `Host` header; lowercased, without port and
//! without a trailing dot, so it can be looked up in the route table.

use http::header::HOST;
use http::uri::Authority;
use http::Request;

/// The host a request is for.
#[derive(Debug)]
pub(crate) struct RequestedHost {
    /// Host and port as the client sent them (for `X-Forwarded-Host`).
    pub(crate) authority: Authority,
    /// The normalized host name, the route table's key.
    pub(crate) name: String,
}

/// The host `request` is for; None when it names none or one that does not parse.
pub(crate) fn requested_host<B>(request: &Request<B>) -> Option<RequestedHost> {
    let authority = match request.uri().authority() {
        Some(authority) => authority.clone(),
        None => {
            let mut values = request.headers().get_all(HOST).iter();
            let value = values.next()?;
            if values.next().is_some() {
                // Two Host headers: refuse rather than guess (RFC 9112, section 3.2).
                return None;
            }
            value.to_str().ok()?.parse().ok()?
        }
    };
    let name = host_name(&authority)?;
    Some(RequestedHost { authority, name })
}

/// The normalized host of an authority such as `Example.COM.:8080`.
fn host_name(authority: &Authority) -> Option<String> {
    if authority.as_str().contains('@') {
        // User info has no place in a Host header.
        return None;
    }
    // `Authority` takes any port text; a port here must be a number (or empty, RFC 3986).
    let port = authority.as_str().strip_prefix(authority.host())?;
    if let Some(port) = port.strip_prefix(':') {
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return None;
        }
    }
    let name = normalize(authority.host());
    (!name.is_empty()).then_some(name)
}

/// Lowercases a host name and drops a trailing dot (`Example.com.` → `example.com`).
pub(crate) fn normalize(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
