//! The fast path for HTTP/1.1 clients: one task per client connection reads
//! a request head, forwards it and its body to an instance over a kept-alive
//! upstream connection, and copies the response back, all in turn, with no
//! other task involved. Bodies pass through as they came (their framing
//! checked and bounded, never decoded), so nothing is buffered whole and
//! server-sent events go out as they arrive.
//!
//! It takes only requests it can forward as they are (see `request`), on
//! the plain and peer listeners and on TLS connections that did not
//! negotiate HTTP/2.
//! Anything else is handed, with the bytes already read, to the full path
//! (hyper) for the rest of the connection: malformed or oversized heads,
//! HTTP/1.0, upgrades, `Expect`, unknown hosts, ACME challenges, HTTPS
//! redirects, declared bodies over the limit, apps with no instance, and
//! HTTP/2 with prior knowledge. Both paths apply the same limits and
//! timeouts, count requests in the same metrics and log them the same way.
//!
//! - `request`: the request head, what the fast path takes, and its rewrite.
//! - `response`: the response head, its body's framing, and its rewrite.
//! - `framing`: a body's framing and what is left of it; `chunked`: where
//!   a chunked body ends, and its data.
//! - `pool`: idle upstream connections, shared with the full path.
//! - `direct`: the full path's requests without a body, sent the same way.
//! - `rewind`: the bytes already read, replayed to the full path.

mod buffer;
mod chunked;
pub(crate) mod direct;
mod exchange;
mod framing;
mod pool;
mod request;
mod response;
mod rewind;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::router::Router;
use crate::side::Side;
use crate::ProxyConfig;

pub(crate) use exchange::serve;
pub(crate) use pool::UpstreamPool;
pub(crate) use rewind::Rewind;

/// Most header fields read in one head; a request with more goes to the full path.
pub(crate) const MAX_HEADERS: usize = 100;

/// Most bytes of an upstream's response head.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// What every fast-path connection of one listener shares.
#[derive(Debug)]
pub(crate) struct FastPath {
    pub(crate) router: Router,
    pub(crate) pool: Arc<UpstreamPool>,
    /// Which listener it serves.
    pub(crate) side: Side,
    pub(crate) max_body: u64,
    pub(crate) max_header_bytes: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) upstream_timeout: Duration,
    /// Cancelled when shutdown begins: connections end after their current request.
    pub(crate) draining: CancellationToken,
}

impl FastPath {
    /// The fast path of the listener on `side`, with `config`'s limits.
    pub(crate) fn new(
        router: Router,
        pool: Arc<UpstreamPool>,
        config: &ProxyConfig,
        side: Side,
        draining: CancellationToken,
    ) -> Self {
        Self {
            router,
            pool,
            side,
            max_body: config.max_request_body_bytes,
            max_header_bytes: config.max_header_bytes,
            header_timeout: config.client_header_timeout,
            body_timeout: config.client_body_timeout,
            upstream_timeout: config.upstream_timeout,
            draining,
        }
    }
}

/// How a connection's time on the fast path ended.
pub(crate) enum Served<I> {
    /// The connection is done.
    Closed,
    /// The full path takes over, starting with the bytes already read.
    Fallback(Rewind<I>),
}

/// Headers that describe one connection, not the message (RFC 9110,
/// section 7.6.1, and the ones older proxies used). The framing headers are
/// handled apart, and `Trailer` stays: chunked bodies pass through with
/// their trailer fields.
fn hop_by_hop(name: &str) -> bool {
    const NAMES: [&str; 7] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    ];
    NAMES.iter().any(|hop| name.eq_ignore_ascii_case(hop))
}

/// Whether a `Connection` header among `headers` names `name`.
fn is_named_by(headers: &[httparse::Header<'_>], name: &str) -> bool {
    headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case("connection"))
        .flat_map(|header| request::tokens(header.value))
        .any(|token| token.eq_ignore_ascii_case(name.as_bytes()))
}
