//! How far a body has got: its framing (RFC 9112, section 6), and what is
//! left of it. The fast path passes bodies through as they came and only
//! needs to know where they end ([`Framing::advance`]); the full path hands
//! hyper the data alone ([`Framing::decode`]).

use std::ops::Range;

use http::HeaderMap;

use super::chunked::ChunkedScanner;
use super::request::RequestBody;
use super::response::ResponseBody;

/// A body's framing and what is left of it.
#[derive(Debug)]
pub(crate) enum Framing {
    Done,
    Length(u64),
    Chunked(ChunkedScanner),
    UntilClose,
}

/// What is wrong with a body.
#[derive(Debug)]
pub(crate) enum BodyFault {
    /// Its chunked framing is not valid.
    Framing,
    /// Its data grew past the limit.
    TooLarge,
}

/// What one [`Framing::decode`] found.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// How many of the bytes given belong to the body.
    pub(crate) used: usize,
    /// Where, among them, the data is.
    pub(crate) data: Range<usize>,
    /// A chunked body's trailer fields, once it is done.
    pub(crate) trailers: Option<HeaderMap>,
}

impl Framing {
    pub(crate) fn of_request(body: RequestBody) -> Self {
        match body {
            RequestBody::Empty => Self::Done,
            RequestBody::Length(length) => Self::Length(length),
            RequestBody::Chunked => Self::Chunked(ChunkedScanner::new()),
        }
    }

    pub(crate) fn of_response(body: ResponseBody) -> Self {
        match body {
            ResponseBody::Empty => Self::Done,
            ResponseBody::Length(length) => Self::Length(length),
            ResponseBody::Chunked => Self::Chunked(ChunkedScanner::new()),
            ResponseBody::UntilClose => Self::UntilClose,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// How many of `bytes` (the next ones on the wire) belong to the body,
    /// whose data may not grow past `limit`; they are passed on as they are.
    pub(crate) fn advance(&mut self, bytes: &[u8], limit: u64) -> Result<usize, BodyFault> {
        match self {
            Self::Done => Ok(0),
            Self::Length(left) => {
                let left = *left;
                Ok(self.take_length(bytes.len(), left))
            }
            Self::Chunked(scanner) => {
                let take = scanner.feed(bytes).map_err(|_| BodyFault::Framing)?;
                if scanner.data_bytes() > limit {
                    return Err(BodyFault::TooLarge);
                }
                if scanner.is_done() {
                    *self = Self::Done;
                }
                Ok(take)
            }
            Self::UntilClose => Ok(bytes.len()),
        }
    }

    /// Decodes the body's next bytes, `bytes`: what belongs to it, where
    /// the data is among that, and (at the end of a chunked body) its trailers.
    pub(crate) fn decode(&mut self, bytes: &[u8]) -> Result<Decoded, BodyFault> {
        let decoded = |used, data, trailers| Decoded {
            used,
            data,
            trailers,
        };
        match self {
            Self::Done => Ok(decoded(0, 0..0, None)),
            Self::Length(left) => {
                let left = *left;
                let take = self.take_length(bytes.len(), left);
                Ok(decoded(take, 0..take, None))
            }
            Self::Chunked(scanner) => {
                let (used, data) = scanner.decode(bytes).map_err(|_| BodyFault::Framing)?;
                let mut trailers = None;
                if scanner.is_done() {
                    trailers = scanner.trailers();
                    *self = Self::Done;
                }
                Ok(decoded(used, data, trailers))
            }
            Self::UntilClose => Ok(decoded(bytes.len(), 0..bytes.len(), None)),
        }
    }

    /// Takes up to `available` bytes of a length-framed body with `left` to go.
    fn take_length(&mut self, available: usize, left: u64) -> usize {
        let take = usize::try_from(left).map_or(available, |left| left.min(available));
        let left = left - take as u64;
        *self = if left == 0 {
            Self::Done
        } else {
            Self::Length(left)
        };
        take
    }
}
