//! Where a chunked body ends (RFC 9112, section 7.1), found without decoding
//! it: the fast path forwards chunked bodies as they came, and only needs to
//! know which bytes belong to the message, how much data they carry (for the
//! body size limit), and whether the framing is valid.
//!
//! The scanner is strict: lines end in CRLF (a bare LF is an error, as is
//! anything but CRLF after a chunk's data), a size has 1 to 16 hex digits,
//! and size lines (with their extensions) and trailer lines are bounded. Any
//! byte sequence either scans to its end, stops at the message's last byte,
//! or fails; it never panics and never reads past what it was given.

use std::ops::Range;

/// Longest chunk-size line accepted, extensions included.
const MAX_SIZE_LINE: usize = 4096;

/// Most bytes of trailer fields accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// Most hex digits in a chunk size: 16 fill a u64.
const MAX_SIZE_DIGITS: u32 = 16;

/// What is wrong with a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChunkedError {
    #[error("a chunk size is not hexadecimal or has too many digits")]
    BadSize,
    #[error("a chunk size line is too long")]
    LongSizeLine,
    #[error("a chunk does not end with CRLF")]
    BadChunkEnd,
    #[error("a line does not end with CRLF")]
    BadLineEnd,
    #[error("the trailer fields are too long")]
    LongTrailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size,
    /// Whitespace after the size, before an extension or the line's end.
    SizeSpace,
    /// A chunk extension, up to the CR.
    Extension,
    /// The LF ending a size line.
    SizeLf,
    /// Chunk data.
    Data,
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// The start of a trailer line, or the CR of the final empty line.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// The LF ending a trailer line.
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
    /// The message is complete.
    Done,
}

/// Scans one chunked body fed to it in pieces.
#[derive(Debug)]
pub(crate) struct ChunkedScanner {
    state: State,
    /// The size being read, then the data left in the current chunk.
    size: u64,
    digits: u32,
    line: usize,
    trailers: usize,
    data: u64,
    /// The trailer section's bytes, kept by [`ChunkedScanner::decode`].
    kept: Vec<u8>,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedScanner {
    /// A scanner at the start of a body.
    pub(crate) fn new() -> Self {
        Self {
            state: State::Size,
            size: 0,
            digits: 0,
            line: 0,
            trailers: 0,
            data: 0,
            kept: Vec::new(),
        }
    }

    /// Whether the body's last byte has been scanned.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The chunk data bytes scanned so far (what the body carries, framing excluded).
    pub(crate) fn data_bytes(&self) -> u64 {
        self.data
    }

    /// Scans `input`, the next bytes of the body; returns how many of them
    /// belong to it: all of them, or fewer when the body ended inside `input`
    /// (the rest is the next message).
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<usize, ChunkedError> {
        let mut at = 0;
        while at < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let left = input.len() - at;
                let take = usize::try_from(self.size).map_or(left, |size| size.min(left));
                at += take;
                self.size -= take as u64;
                self.data += take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.step(input[at])?;
            at += 1;
        }
        Ok(at)
    }

    /// Decodes rather than scans: uses the framing at the start of `input`
    /// up to the next chunk data, and that data; returns how many bytes were
    /// used and where among them the data is (empty when none). Trailer
    /// fields are kept for [`ChunkedScanner::trailers`].
    pub(crate) fn decode(&mut self, input: &[u8]) -> Result<(usize, Range<usize>), ChunkedError> {
        let mut at = 0;
        while at < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let left = input.len() - at;
                let take = usize::try_from(self.size).map_or(left, |size| size.min(left));
                self.size -= take as u64;
                self.data += take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                return Ok((at + take, at..at + take));
            }
            if matches!(
                self.state,
                State::TrailerStart | State::Trailer | State::TrailerLf
            ) {
                self.kept.push(input[at]);
            }
            self.step(input[at])?;
            at += 1;
        }
        Ok((at, at..at))
    }

    /// The trailer fields [`ChunkedScanner::decode`] saw, once the body is
    /// done; None when there were none, or they do not parse.
    pub(crate) fn trailers(&self) -> Option<http::HeaderMap> {
        // The kept bytes end with the CR of the final empty line.
        if !self.is_done() || self.kept.len() <= 1 {
            return None;
        }
        let mut block = self.kept.clone();
        block.push(b'\n');
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let Ok(httparse::Status::Complete((_, fields))) =
            httparse::parse_headers(&block, &mut fields)
        else {
            return None;
        };
        let mut trailers = http::HeaderMap::new();
        for field in fields {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(field.name.as_bytes()),
                http::HeaderValue::from_bytes(field.value),
            ) {
                trailers.append(name, value);
            }
        }
        Some(trailers)
    }

    fn step(&mut self, byte: u8) -> Result<(), ChunkedError> {
        match self.state {
            State::Size | State::SizeSpace | State::Extension => {
                self.line += 1;
                if self.line > MAX_SIZE_LINE {
                    return Err(ChunkedError::LongSizeLine);
                }
            }
            State::TrailerStart | State::Trailer | State::TrailerLf => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(ChunkedError::LongTrailers);
                }
            }
            _ => {}
        }
        self.state = match (self.state, byte) {
            (State::Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                if self.digits == MAX_SIZE_DIGITS {
                    return Err(ChunkedError::BadSize);
                }
                self.digits += 1;
                self.size = (self.size << 4) | u64::from(hex_value(byte));
                State::Size
            }
            (State::Size, _) if self.digits == 0 => return Err(ChunkedError::BadSize),
            (State::Size | State::SizeSpace, b' ' | b'\t') => State::SizeSpace,
            (State::Size | State::SizeSpace, b';') => State::Extension,
            (State::Size | State::SizeSpace | State::Extension, b'\r') => State::SizeLf,
            (State::Size | State::SizeSpace, _) => return Err(ChunkedError::BadSize),
            (State::Extension, b'\n') => return Err(ChunkedError::BadLineEnd),
            (State::Extension, _) => State::Extension,
            (State::SizeLf, b'\n') => {
                self.line = 0;
                self.digits = 0;
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size,
            (State::DataCr | State::DataLf, _) => return Err(ChunkedError::BadChunkEnd),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::Trailer, b'\n') => return Err(ChunkedError::BadLineEnd),
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::Trailer, _) => State::Trailer,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            (State::SizeLf | State::TrailerLf | State::EndLf, _) => {
                return Err(ChunkedError::BadLineEnd)
            }
            // Data is consumed in bulk by `feed`, and nothing follows Done.
            (State::Data | State::Done, _) => self.state,
        };
        Ok(())
    }
}

fn hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        _ => byte - b'A' + 10,
    }
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
