//! The body types the proxy hands to hyper, and the small bodies it writes itself.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Any error a body can fail with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the proxy sends: an instance's streamed body or
/// one the proxy wrote itself.
pub(crate) type ProxyBody = BoxBody<Bytes, BoxError>;

/// A body holding `bytes`, sent in one piece.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body with nothing in it.
pub(crate) fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}
