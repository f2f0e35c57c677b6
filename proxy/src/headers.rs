//! Header rewriting between client and instance: hop-by-hop headers stay on
//! their own hop (both directions), and the instance learns who really asked
//! through `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`.
//!
//! Those three are trusted only from another node proxy, on the peer
//! listener (mutual TLS): that node already wrote them for its client. On
//! the public listeners whatever a client sent under those names is
//! replaced, so an instance always sees its real client's address alone.

use std::net::IpAddr;

use http::header::{CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER};
use http::header::{TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::side::Side;

/// `X-Forwarded-For`: the chain of client addresses.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used.
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the host the client asked for.
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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

/// The scheme a forwarding node proxy said its client used (`http` or
/// `https`); anything else is ignored.
fn forwarded_scheme(headers: &HeaderMap) -> Option<&'static str> {
    match headers.get(X_FORWARDED_PROTO)?.as_bytes() {
        b"http" => Some("http"),
        b"https" => Some("https"),
        _ => None,
    }
}

/// Tells the instance who asked, as seen on `side`: from a client, its
/// address alone in `X-Forwarded-For`, the listener's scheme in
/// `X-Forwarded-Proto` and `host` (as the client sent it) in
/// `X-Forwarded-Host`, whatever the client sent under those names; from
/// another node, what that node wrote, filled in where it left a gap.
pub(crate) fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, side: Side, host: &str) {
    let trusted = side.keeps_forwarded();
    let scheme = match trusted {
        true => forwarded_scheme(headers).unwrap_or(side.own_scheme()),
        false => side.own_scheme(),
    };
    if !(trusted && headers.contains_key(X_FORWARDED_FOR)) {
        let client = HeaderValue::from_str(&client.to_canonical().to_string()).ok();
        set(headers, X_FORWARDED_FOR, client);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
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
