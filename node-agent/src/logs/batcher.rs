//! Turning what a process writes into log batches, without I/O: bytes read
//! from either pipe become pieces in the order they were read (one sequence
//! across stdout and stderr), lines longer than a piece are split, and a
//! batch is ready when it is big enough or its timer has run out (decided
//! by the caller).

use reef_proto::log_batch::{BatchWriter, PieceEnd, MAX_PIECE_BYTES};
use reef_proto::subjects::Output;

/// A batch is sent once its encoding reaches this size.
pub const BATCH_BYTES: usize = 256 * 1024;

/// A finished batch: its bytes and the lines it completes per stream.
#[derive(Debug)]
pub struct Ready {
    pub payload: Vec<u8>,
    /// Lines completed in it (stdout, stderr).
    pub lines: (u64, u64),
}

/// Collects one process's output into batches.
#[derive(Debug)]
pub struct Batcher {
    batch: BatchWriter,
    lines: (u64, u64),
    streams: [Stream; 2],
}

/// One stream's line in progress.
#[derive(Debug, Default)]
struct Stream {
    /// Bytes of the current line not yet in a piece.
    open: Vec<u8>,
    /// Part of the current line already went out as a [`PieceEnd::Part`].
    started: bool,
}

fn index(output: Output) -> usize {
    match output {
        Output::Stdout => 0,
        Output::Stderr => 1,
    }
}

impl Batcher {
    /// Batches of the process `source` (a number drawn per process, told
    /// apart from others that write to the same subject).
    pub fn new(source: u64) -> Self {
        Self {
            batch: BatchWriter::new(source, 0),
            lines: (0, 0),
            streams: Default::default(),
        }
    }

    /// Takes bytes read from `output`'s pipe.
    pub fn take(&mut self, output: Output, mut bytes: &[u8]) {
        loop {
            let newline = bytes.iter().position(|b| *b == b'\n');
            let segment = &bytes[..newline.unwrap_or(bytes.len())];
            let open = &self.streams[index(output)].open;
            if newline.is_some() && open.is_empty() && segment.len() <= MAX_PIECE_BYTES {
                // The common case: a whole line in what was read.
                self.piece(output, PieceEnd::Line, segment);
            } else {
                self.hold(output, segment);
                if newline.is_some() {
                    let line = std::mem::take(&mut self.streams[index(output)].open);
                    self.piece(output, PieceEnd::Line, &line);
                }
            }
            match newline {
                Some(at) => bytes = &bytes[at + 1..],
                None => return,
            }
        }
    }

    /// Keeps `segment` as part of `output`'s open line, never holding more
    /// than a piece: what does not fit goes out as parts.
    fn hold(&mut self, output: Output, mut segment: &[u8]) {
        loop {
            let open = &mut self.streams[index(output)].open;
            let room = MAX_PIECE_BYTES - open.len();
            if segment.len() <= room {
                open.extend_from_slice(segment);
                return;
            }
            open.extend_from_slice(&segment[..room]);
            segment = &segment[room..];
            let part = std::mem::take(open);
            self.piece(output, PieceEnd::Part, &part);
        }
    }

    /// `output`'s pipe has ended: a line left open ends with it.
    pub fn end(&mut self, output: Output) {
        let stream = &mut self.streams[index(output)];
        if stream.started || !stream.open.is_empty() {
            let rest = std::mem::take(&mut stream.open);
            self.piece(output, PieceEnd::End, &rest);
        }
    }

    /// Puts what each stream has of an unfinished line into the batch, so a
    /// prompt without a newline is seen while its process waits.
    pub fn flush_open_lines(&mut self) {
        for output in [Output::Stdout, Output::Stderr] {
            let stream = &mut self.streams[index(output)];
            if !stream.open.is_empty() {
                let part = std::mem::take(&mut stream.open);
                self.piece(output, PieceEnd::Part, &part);
            }
        }
    }

    /// Whether the batch should be sent now.
    pub fn is_full(&self) -> bool {
        self.batch.len() >= BATCH_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// The batch so far, if it has anything; the next one continues its
    /// sequence.
    pub fn take_batch(&mut self) -> Option<Ready> {
        if self.batch.is_empty() {
            return None;
        }
        let next = BatchWriter::new(self.batch.source(), self.batch.next_seq());
        let batch = std::mem::replace(&mut self.batch, next);
        Some(Ready {
            payload: batch.finish(),
            lines: std::mem::take(&mut self.lines),
        })
    }

    fn piece(&mut self, output: Output, end: PieceEnd, bytes: &[u8]) {
        self.batch.push(output, end, bytes);
        self.streams[index(output)].started = end == PieceEnd::Part;
        if end != PieceEnd::Part {
            match output {
                Output::Stdout => self.lines.0 += 1,
                Output::Stderr => self.lines.1 += 1,
            }
        }
    }
}

#[cfg(test)]
#[path = "batcher_tests.rs"]
mod tests;
