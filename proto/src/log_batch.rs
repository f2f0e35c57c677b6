//! The log wire format: one message carries many pieces of a process's
//! output, stdout and stderr interleaved in the order the agent read them,
//! each numbered by a sequence the agent assigns per process. A line longer
//! than a piece travels as several pieces and is joined again by readers,
//! so output comes back byte for byte, with or without a final newline.
//!
//! Layout: the magic `RLOG`, a format byte, the source (a number the agent
//! draws for each process it reads, as processes may share a subject: an
//! instance's hooks and restarts), the sequence number of the first piece
//! and the number of pieces (LEB128 varints), then each piece:
//! a tag byte (bit 0: stderr; bits 1-2: how the piece ends, see
//! [`PieceEnd`]), its length (varint) and its bytes. Decoding never trusts
//! the bytes: every length is checked against what is left, unknown tags
//! and trailing bytes are refused, and nothing is allocated up front from a
//! count the message claims.

use crate::subjects::Output;

/// First bytes of every log batch.
pub const MAGIC: &[u8; 4] = b"RLOG";
/// The layout version this build writes and reads.
pub const FORMAT: u8 = 1;
/// Most bytes of one line in one piece; longer lines are split.
pub const MAX_PIECE_BYTES: usize = 64 * 1024;

/// How a piece ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceEnd {
    /// A newline followed these bytes: the line is complete.
    Line,
    /// More of the same line follows in a later piece.
    Part,
    /// The stream ended inside this line, without a final newline.
    End,
}

/// One piece of output: part or all of a line of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece<'a> {
    pub seq: u64,
    pub output: Output,
    pub end: PieceEnd,
    pub bytes: &'a [u8],
}

impl Piece<'_> {
    /// Whether this piece finishes a line (so that line counts as shipped).
    /// A stream that ends right after a newline sends no [`PieceEnd::End`].
    pub fn ends_line(&self) -> bool {
        self.end != PieceEnd::Part
    }
}

/// Why a log batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogBatchError {
    #[error("not a reef log batch (no RLOG magic)")]
    BadMagic,
    #[error("log batch format {0} is not the one this build reads ({FORMAT})")]
    UnsupportedFormat(u8),
    #[error("log batch ends in the middle of {0}")]
    Truncated(&'static str),
    #[error("log batch has a piece with unknown tag {0:#04x}")]
    BadTag(u8),
    #[error("log batch has a varint longer than 64 bits")]
    BadVarint,
    #[error("log batch has {0} bytes after its last piece")]
    TrailingBytes(usize),
    #[error("log batch sequence numbers overflow")]
    SeqOverflow,
}

/// Builds one batch, piece by piece.
#[derive(Debug)]
pub struct BatchWriter {
    head: Vec<u8>,
    body: Vec<u8>,
    source: u64,
    first_seq: u64,
    pieces: u64,
}

impl BatchWriter {
    /// An empty batch of `source` whose first piece will be numbered
    /// `first_seq`.
    pub fn new(source: u64, first_seq: u64) -> Self {
        Self {
            head: Vec::with_capacity(32),
            body: Vec::new(),
            source,
            first_seq,
            pieces: 0,
        }
    }

    /// Appends a piece (numbered `first_seq` + pieces so far). `bytes`
    /// longer than [`MAX_PIECE_BYTES`] are the caller's to split.
    pub fn push(&mut self, output: Output, end: PieceEnd, bytes: &[u8]) {
        self.body.push(tag(output, end));
        put_varint(&mut self.body, bytes.len() as u64);
        self.body.extend_from_slice(bytes);
        self.pieces += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.pieces == 0
    }

    pub fn source(&self) -> u64 {
        self.source
    }

    /// The sequence number the next piece pushed gets.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.pieces
    }

    /// Encoded size so far, within a few bytes of the header.
    pub fn len(&self) -> usize {
        self.body.len() + 32
    }

    /// The encoded batch.
    pub fn finish(mut self) -> Vec<u8> {
        self.head.extend_from_slice(MAGIC);
        self.head.push(FORMAT);
        put_varint(&mut self.head, self.source);
        put_varint(&mut self.head, self.first_seq);
        put_varint(&mut self.head, self.pieces);
        self.head.extend_from_slice(&self.body);
        self.head
    }
}

/// A decoded batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    /// Which process of its subject the pieces are of.
    pub source: u64,
    /// Its pieces, in the order the agent read them.
    pub pieces: Vec<Piece<'a>>,
}

/// Reads a batch.
pub fn decode(bytes: &[u8]) -> Result<Batch<'_>, LogBatchError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(LogBatchError::BadMagic)?;
    let (&format, mut rest) = rest
        .split_first()
        .ok_or(LogBatchError::Truncated("the header"))?;
    if format != FORMAT {
        return Err(LogBatchError::UnsupportedFormat(format));
    }
    let source = take_varint(&mut rest, "the header")?;
    let first_seq = take_varint(&mut rest, "the header")?;
    let count = take_varint(&mut rest, "the header")?;
    first_seq
        .checked_add(count)
        .ok_or(LogBatchError::SeqOverflow)?;
    // Each piece takes at least two bytes: the count is not trusted further.
    let mut pieces = Vec::with_capacity((count as usize).min(rest.len() / 2));
    for i in 0..count {
        let (&tag, after) = rest
            .split_first()
            .ok_or(LogBatchError::Truncated("a piece"))?;
        rest = after;
        let (output, end) = untag(tag)?;
        let len = take_varint(&mut rest, "a piece")?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= rest.len())
            .ok_or(LogBatchError::Truncated("a piece"))?;
        let (piece, after) = rest.split_at(len);
        rest = after;
        pieces.push(Piece {
            seq: first_seq + i,
            output,
            end,
            bytes: piece,
        });
    }
    if !rest.is_empty() {
        return Err(LogBatchError::TrailingBytes(rest.len()));
    }
    Ok(Batch { source, pieces })
}

fn tag(output: Output, end: PieceEnd) -> u8 {
    let stream = match output {
        Output::Stdout => 0,
        Output::Stderr => 1,
    };
    let end = match end {
        PieceEnd::Line => 0,
        PieceEnd::Part => 1,
        PieceEnd::End => 2,
    };
    stream | (end << 1)
}

fn untag(tag: u8) -> Result<(Output, PieceEnd), LogBatchError> {
    let output = if tag & 1 == 0 {
        Output::Stdout
    } else {
        Output::Stderr
    };
    let end = match tag >> 1 {
        0 => PieceEnd::Line,
        1 => PieceEnd::Part,
        2 => PieceEnd::End,
        _ => return Err(LogBatchError::BadTag(tag)),
    };
    Ok((output, end))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(rest: &mut &[u8], what: &'static str) -> Result<u64, LogBatchError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, after) = rest.split_first().ok_or(LogBatchError::Truncated(what))?;
        *rest = after;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return Err(LogBatchError::BadVarint);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(LogBatchError::BadVarint)
}

/// Joins pieces back into lines, per stream: what a reader that needs whole
/// lines (`--tail`, a deploy's failure report) keeps.
#[derive(Debug, Default)]
pub struct LineJoiner {
    open: [Vec<u8>; 2],
}

/// A whole line, and whether a newline ended it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedLine {
    pub output: Output,
    pub bytes: Vec<u8>,
    pub newline: bool,
}

impl LineJoiner {
    /// Takes a piece; returns the line it finished, if it finished one.
    pub fn push(&mut self, piece: &Piece<'_>) -> Option<JoinedLine> {
        let open = match piece.output {
            Output::Stdout => &mut self.open[0],
            Output::Stderr => &mut self.open[1],
        };
        open.extend_from_slice(piece.bytes);
        piece.ends_line().then(|| JoinedLine {
            output: piece.output,
            bytes: std::mem::take(open),
            newline: piece.end == PieceEnd::Line,
        })
    }
}

#[cfg(test)]
#[path = "log_batch_tests.rs"]
mod tests;
