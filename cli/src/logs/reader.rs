//! Reading log batches back: pieces in the sequence their agent gave them
//! (a batch seen twice is printed once), printed as they come with an
//! optional prefix at the start of each line, or joined into whole lines
//! where only the last lines are wanted.

use reef_proto::log_batch::{self, JoinedLine, LineJoiner, Piece, PieceEnd};
use reef_proto::subjects::Output;
use std::collections::{HashMap, HashSet};
use std::io::Write;

/// The next sequence number expected of each process (a source on a log
/// subject).
#[derive(Default)]
pub struct Sequencer {
    next: HashMap<(String, u64), u64>,
}

impl Sequencer {
    /// The pieces of a message not seen before, in their agent's order. A
    /// message that cannot be read is said so on stderr and skipped.
    pub fn accept<'a>(&mut self, subject: &str, payload: &'a [u8]) -> Vec<Piece<'a>> {
        let batch = match log_batch::decode(payload) {
            Ok(batch) => batch,
            Err(e) => {
                eprintln!("reef: skipped a log message on {subject} that could not be read: {e}");
                return Vec::new();
            }
        };
        let next = self
            .next
            .entry((subject.to_string(), batch.source))
            .or_insert(0);
        let fresh: Vec<Piece<'a>> = batch
            .pieces
            .into_iter()
            .filter(|p| p.seq >= *next)
            .collect();
        if let Some(last) = fresh.last() {
            *next = last.seq + 1;
        }
        fresh
    }
}

/// Whole lines of many processes, each joined from its pieces.
#[derive(Default)]
pub struct Joiners {
    by_subject: HashMap<String, LineJoiner>,
}

impl Joiners {
    pub fn push(&mut self, subject: &str, piece: &Piece<'_>) -> Option<JoinedLine> {
        if !self.by_subject.contains_key(subject) {
            self.by_subject
                .insert(subject.to_string(), LineJoiner::default());
        }
        self.by_subject.get_mut(subject)?.push(piece)
    }
}

/// Writes pieces to stdout and stderr in the order given, a prefix at the
/// start of each line; what was given is written at each [`Printer::flush`].
#[derive(Default)]
pub struct Printer {
    runs: Vec<(Output, Vec<u8>)>,
    /// (subject, stream) whose last piece left a line open.
    mid_line: HashSet<(String, bool)>,
}

impl Printer {
    pub fn piece(&mut self, subject: &str, prefix: &[u8], piece: &Piece<'_>) {
        let key = (subject.to_string(), piece.output == Output::Stderr);
        let open = self.mid_line.contains(&key);
        let run = self.run(piece.output);
        if !open {
            run.extend_from_slice(prefix);
        }
        run.extend_from_slice(piece.bytes);
        match piece.end {
            PieceEnd::Line => {
                run.push(b'\n');
                self.mid_line.remove(&key);
            }
            PieceEnd::Part => {
                self.mid_line.insert(key);
            }
            PieceEnd::End => {
                self.mid_line.remove(&key);
            }
        }
    }

    /// A whole line, with its prefix.
    pub fn line(&mut self, prefix: &[u8], line: &JoinedLine) {
        let run = self.run(line.output);
        run.extend_from_slice(prefix);
        run.extend_from_slice(&line.bytes);
        if line.newline {
            run.push(b'\n');
        }
    }

    fn run(&mut self, output: Output) -> &mut Vec<u8> {
        if self.runs.last().map(|(o, _)| *o) != Some(output) {
            self.runs.push((output, Vec::new()));
        }
        let last = self.runs.len() - 1;
        &mut self.runs[last].1
    }

    /// Writes what was given. A reader that went away (`reef logs X | head`)
    /// ends the command quietly.
    pub fn flush(&mut self) {
        for (output, bytes) in self.runs.drain(..) {
            let result = match output {
                Output::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&bytes).and_then(|()| out.flush())
                }
                Output::Stderr => {
                    let mut err = std::io::stderr().lock();
                    err.write_all(&bytes).and_then(|()| err.flush())
                }
            };
            if let Err(e) = result {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    std::process::exit(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reef_proto::log_batch::BatchWriter;

    fn batch(first: u64, pieces: &[(Output, PieceEnd, &[u8])]) -> Vec<u8> {
        let mut w = BatchWriter::new(5, first);
        for (o, e, b) in pieces {
            w.push(*o, *e, b);
        }
        w.finish()
    }

    #[test]
    fn a_batch_seen_twice_is_taken_once() {
        let mut seq = Sequencer::default();
        let one = batch(0, &[(Output::Stdout, PieceEnd::Line, b"a")]);
        let two = batch(1, &[(Output::Stderr, PieceEnd::Line, b"b")]);
        assert_eq!(seq.accept("s", &one).len(), 1);
        assert_eq!(seq.accept("s", &two).len(), 1);
        assert!(seq.accept("s", &one).is_empty());
        assert_eq!(seq.accept("other", &one).len(), 1);
        assert!(seq.accept("s", b"garbage").is_empty());
        // Another process on the same subject (a hook, a restart) starts over.
        let mut restarted = BatchWriter::new(6, 0);
        restarted.push(Output::Stdout, PieceEnd::Line, b"again");
        assert_eq!(seq.accept("s", &restarted.finish()).len(), 1);
    }

    #[test]
    fn prefixes_start_lines_and_parts_are_joined() {
        let mut printer = Printer::default();
        let bytes = batch(
            0,
            &[
                (Output::Stdout, PieceEnd::Part, b"he"),
                (Output::Stdout, PieceEnd::Line, b"llo"),
                (Output::Stderr, PieceEnd::Line, b"oops"),
                (Output::Stdout, PieceEnd::End, b"bye"),
            ],
        );
        for piece in log_batch::decode(&bytes).expect("decode").pieces {
            printer.piece("s", b"[n/i] ", &piece);
        }
        let runs: Vec<(Output, &[u8])> = printer.runs.iter().map(|(o, b)| (*o, &b[..])).collect();
        assert_eq!(
            runs,
            vec![
                (Output::Stdout, &b"[n/i] hello\n"[..]),
                (Output::Stderr, &b"[n/i] oops\n"[..]),
                (Output::Stdout, &b"[n/i] bye"[..]),
            ]
        );
    }
}
