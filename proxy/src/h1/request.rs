//! A client's request head, as the fast path reads it: parsed in place,
//! classified (forwarded here, or handed to the full path), and written out
//! again for the upstream with the proxy's changes.
//!
//! Only the common case is taken: HTTP/1.1, origin-form target, a method
//! other than CONNECT, exactly one Host that is a plain name or IPv4 address
//! (with an optional port), a body framed by one `Content-Length` or by
//! `Transfer-Encoding: chunked` alone (never both), and no `Upgrade` or
//! `Expect`. Everything else, malformed heads included, goes to the full
//! path, which answers it (400, 431, 100-continue, upgrades, HTTP/2, HTTP/1.0)
//! exactly as it answers any request.

use std::borrow::Cow;

use super::{hop_by_hop, is_named_by, MAX_HEADERS};

/// How the request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestBody {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// What became of the bytes read so far.
#[derive(Debug)]
pub(crate) enum Parsed<T> {
    /// The head is not complete yet.
    Partial,
    /// The fast path takes it.
    Ready(T),
    /// The full path must answer it.
    Fallback,
}

/// A complete request head the fast path forwards.
#[derive(Debug)]
pub(crate) struct RequestHead<'b> {
    /// Bytes of the head, the final CRLF included.
    pub(crate) len: usize,
    pub(crate) method: &'b str,
    pub(crate) path: &'b str,
    pub(crate) headers: &'b [httparse::Header<'b>],
    /// The Host header as sent: `X-Forwarded-Host` and the upstream's `Host`.
    pub(crate) host: &'b str,
    /// The route table's key: lowercased, without port or trailing dot.
    pub(crate) name: Cow<'b, str>,
    pub(crate) body: RequestBody,
    /// The client asked to close the connection after this request.
    pub(crate) close: bool,
    /// Its `X-Forwarded-Proto`, when that is `http` or `https`.
    pub(crate) forwarded_proto: Option<&'static str>,
}

impl RequestHead<'_> {
    /// Whether sending it again cannot change more than sending it once
    /// (RFC 9110, section 9.2.2): a safe retry after a dead pooled connection.
    pub(crate) fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        )
    }

    /// A HEAD request: its response has no body whatever it declares.
    pub(crate) fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Parses the request head at the start of `buf` into `headers`.
pub(crate) fn parse<'b>(
    buf: &'b [u8],
    headers: &'b mut [httparse::Header<'b>; MAX_HEADERS],
) -> Parsed<RequestHead<'b>> {
    let mut request = httparse::Request::new(headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Fallback,
    };
    let (Some(method), Some(path), Some(1)) = (request.method, request.path, request.version)
    else {
        return Parsed::Fallback;
    };
    if method == "CONNECT" || !path.starts_with('/') {
        return Parsed::Fallback;
    }
    let headers: &'b [httparse::Header<'b>] = request.headers;
    let mut host = None;
    let mut hosts = 0;
    let mut length = None;
    let mut chunked = false;
    let mut close = false;
    let mut forwarded_proto = None;
    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host = Some(header.value);
        } else if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Parsed::Fallback;
            }
            match parse_length(header.value) {
                Some(value) => length = Some(value),
                None => return Parsed::Fallback,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || !trim(header.value).eq_ignore_ascii_case(b"chunked") {
                return Parsed::Fallback;
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(header.value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Fallback;
                }
            }
        } else if name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("expect") {
            return Parsed::Fallback;
        } else if name.eq_ignore_ascii_case("x-forwarded-proto") {
            forwarded_proto = match header.value {
                b"http" => Some("http"),
                b"https" => Some("https"),
                _ => None,
            };
        }
    }
    let body = match (length, chunked) {
        (Some(_), true) => return Parsed::Fallback,
        (Some(0) | None, false) => RequestBody::Empty,
        (Some(length), false) => RequestBody::Length(length),
        (None, true) => RequestBody::Chunked,
    };
    let (1, Some(host)) = (hosts, host) else {
        return Parsed::Fallback;
    };
    let Some((host, name)) = host_name(host) else {
        return Parsed::Fallback;
    };
    Parsed::Ready(RequestHead {
        len,
        method,
        path,
        headers,
        host,
        name,
        body,
        close,
        forwarded_proto,
    })
}

/// What the proxy adds to a request it forwards.
#[derive(Debug)]
pub(crate) struct Forwarding<'a> {
    /// The client's address as `X-Forwarded-For` lists it.
    pub(crate) client_ip: &'a str,
    /// What goes into `X-Forwarded-Proto`.
    pub(crate) scheme: &'a str,
    /// Another node sent the request: its `X-Forwarded-For` is kept as it
    /// is (that node put the client there); otherwise the client's own is
    /// replaced by `client_ip`.
    pub(crate) keep_chain: bool,
}

/// Writes the head the upstream gets for `head` into `out`: the same method,
/// target and headers, less the hop-by-hop ones (framing headers stay, as
/// the body is forwarded as it came), with the client's Host and the
/// `X-Forwarded-*` set.
pub(crate) fn write_upstream(
    out: &mut Vec<u8>,
    head: &RequestHead<'_>,
    forwarding: &Forwarding<'_>,
) {
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let named = head
        .headers
        .iter()
        .any(|header| header.name.eq_ignore_ascii_case("connection"));
    let mut earlier_for = false;
    for header in head.headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            earlier_for = true;
            continue;
        }
        let framing = name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding");
        if !framing
            && (hop_by_hop(name)
                || name.eq_ignore_ascii_case("host")
                || name.eq_ignore_ascii_case("x-forwarded-proto")
                || name.eq_ignore_ascii_case("x-forwarded-host")
                || (named && is_named_by(head.headers, name)))
        {
            continue;
        }
        put_header(out, name.as_bytes(), header.value);
    }
    out.extend_from_slice(b"host: ");
    out.extend_from_slice(head.host.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-for: ");
    if earlier_for && forwarding.keep_chain {
        let mut first = true;
        for header in head.headers {
            if header.name.eq_ignore_ascii_case("x-forwarded-for") {
                if !first {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(trim(header.value));
                first = false;
            }
        }
    } else {
        out.extend_from_slice(forwarding.client_ip.as_bytes());
    }
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(forwarding.scheme.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-host: ");
    out.extend_from_slice(head.host.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends `name: value` and its CRLF.
pub(crate) fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `Content-Length`: 1 to 18 digits, nothing else (RFC 9110, section 8.6).
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let value = trim(value);
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0, |length, digit| length * 10 + u64::from(digit - b'0')),
    )
}

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
pub(crate) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(trim)
        .filter(|token| !token.is_empty())
}

/// `value` without leading and trailing spaces and tabs.
pub(crate) fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|byte| !matches!(byte, b' ' | b'\t'))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|byte| !matches!(byte, b' ' | b'\t'))
        .map_or(start, |last| last + 1);
    &value[start..end]
}

/// The Host header as sent and its route-table key, for a host that is a
/// DNS name or IPv4 address with an optional port; None for anything else
/// (IPv6 literals, user info, stray characters), which the full path judges.
fn host_name(value: &[u8]) -> Option<(&str, Cow<'_, str>)> {
    let text = std::str::from_utf8(value).ok()?;
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    if let Some(port) = port {
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return None;
        }
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = |byte: &u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_');
    if host.is_empty() || !host.bytes().all(|byte| valid(&byte)) {
        return None;
    }
    let name = if host.bytes().any(|byte| byte.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    Some((text, name))
}

/// Writes `ip` the way `X-Forwarded-For` lists it (IPv4-mapped IPv6 as IPv4).
pub(crate) fn client_ip(ip: std::net::IpAddr) -> String {
    ip.to_canonical().to_string()
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
