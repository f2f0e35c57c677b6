//! Header rewriting between client and instance: hop-by-hop headers stay on
//! their own hop (both directions), the instance learns who really asked
//! through `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`, and
//! requests one node proxy forwards to another carry the hop marker.
//!
//! The hop marker (`x-reef-hop`) only prevents forwarding loops between node
//! proxies: a request carrying it is served by local instances or not at all.
//! It proves nothing about who sent it and must never be used to grant access.
//! A client that sends it only hurts itself: it is not forwarded to another
//! node, and its own `X-Forwarded-Proto` and the plain-HTTP redirect, which
//! a forwarding node has already dealt with, are taken as they come.

use std::net::IpAddr;

use http::header::{CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER};
use http::header::{TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`: the chain of client addresses.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used.
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the host the client asked for.
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The hop marker: set on requests forwarded to another node's proxy.
pub(crate) const HOP_MARKER: HeaderName = HeaderName::from_static("x-reef-hop");

/// Headers that describe one connection, not the message (RFC 9110, section 7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
];

/// Removes the hop-by-hop headers, including every header `Connection` names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Removes the hop marker; true if the request carried one. Instances never
/// see it: only node proxies speak it.
pub(crate) fn take_hop_marker(headers: &mut HeaderMap) -> bool {
    headers.remove(HOP_MARKER).is_some()
}

/// Marks a request as forwarded by a node proxy.
pub(crate) fn set_hop_marker(headers: &mut HeaderMap) {
    headers.insert(HOP_MARKER, HeaderValue::from_static("1"));
}

/// The scheme a forwarding node proxy said its client used (`http` or
/// `https`); anything else is ignored.
pub(crate) fn forwarded_scheme(headers: &HeaderMap) -> Option<&'static str> {
    match headers.get(X_FORWARDED_PROTO)?.as_bytes() {
        b"http" => Some("http"),
        b"https" => Some("https"),
        _ => None,
    }
}

/// Tells the instance who asked: appends `client` to `X-Forwarded-For` and
/// sets `X-Forwarded-Proto` and `X-Forwarded-Host` (`host` as the client sent it).
pub(crate) fn add_forwarded(headers: &mut HeaderMap, client: IpAddr, scheme: &str, host: &str) {
    let client = client.to_canonical().to_string();
    let mut chain: Vec<u8> = Vec::new();
    for earlier in headers.get_all(X_FORWARDED_FOR) {
        if !chain.is_empty() {
            chain.extend_from_slice(b", ");
        }
        chain.extend_from_slice(earlier.as_bytes());
    }
    if !chain.is_empty() {
        chain.extend_from_slice(b", ");
    }
    chain.extend_from_slice(client.as_bytes());
    let chain = HeaderValue::from_bytes(&chain)
        .or_else(|_| HeaderValue::from_str(&client))
        .ok();
    set(headers, X_FORWARDED_FOR, chain);
    set(
        headers,
        X_FORWARDED_PROTO,
        HeaderValue::from_str(scheme).ok(),
    );
    set(headers, X_FORWARDED_HOST, HeaderValue::from_str(host).ok());
}

/// Replaces every `name` header with `value` (or removes them when it is None).
fn set(headers: &mut HeaderMap, name: HeaderName, value: Option<HeaderValue>) {
    match value {
        Some(value) => {
            headers.insert(name, value);
        }
        None => {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
