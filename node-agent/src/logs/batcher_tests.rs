use super::*;
use proptest::prelude::*;
use reef_proto::log_batch::{decode, LineJoiner};

/// Every stream's bytes as a reader rebuilds them, pieces joined, and the
/// sequence numbers seen.
fn read_back(batches: &[Ready]) -> ([Vec<u8>; 2], Vec<u64>, (u64, u64)) {
    let mut streams = [Vec::new(), Vec::new()];
    let mut seqs = Vec::new();
    let mut lines = (0, 0);
    let mut joiner = LineJoiner::default();
    for batch in batches {
        lines.0 += batch.lines.0;
        lines.1 += batch.lines.1;
        let read = decode(&batch.payload).expect("a batch the agent wrote");
        assert_eq!(read.source, 7);
        for piece in read.pieces {
            assert!(piece.bytes.len() <= MAX_PIECE_BYTES);
            seqs.push(piece.seq);
            if let Some(line) = joiner.push(&piece) {
                let out = &mut streams[index(line.output)];
                out.extend_from_slice(&line.bytes);
                if line.newline {
                    out.push(b'\n');
                }
            }
        }
    }
    (streams, seqs, lines)
}

fn drain(batcher: &mut Batcher, into: &mut Vec<Ready>) {
    into.extend(batcher.take_batch());
}

#[test]
fn interleaved_lines_keep_the_order_they_were_read_in() {
    let mut batcher = Batcher::new(7);
    batcher.take(Output::Stdout, b"out 1\n");
    batcher.take(Output::Stderr, b"err 1\n");
    batcher.take(Output::Stdout, b"out 2\n");
    let ready = batcher.take_batch().expect("a batch");
    let pieces = decode(&ready.payload).expect("decode").pieces;
    let order: Vec<_> = pieces.iter().map(|p| (p.seq, p.bytes)).collect();
    assert_eq!(
        order,
        vec![(0, &b"out 1"[..]), (1, &b"err 1"[..]), (2, &b"out 2"[..])]
    );
    assert_eq!(ready.lines, (2, 1));
    batcher.take(Output::Stdout, b"next\n");
    let next = batcher.take_batch().expect("a batch");
    assert_eq!(decode(&next.payload).expect("decode").pieces[0].seq, 3);
    assert!(batcher.take_batch().is_none());
}

#[test]
fn a_million_byte_line_without_newline_comes_back_whole() {
    let line = vec![b'A'; 1_000_000];
    let mut batcher = Batcher::new(7);
    let mut batches = Vec::new();
    for chunk in line.chunks(65_536) {
        batcher.take(Output::Stdout, chunk);
        if batcher.is_full() {
            drain(&mut batcher, &mut batches);
        }
    }
    batcher.end(Output::Stdout);
    drain(&mut batcher, &mut batches);
    let (streams, _, lines) = read_back(&batches);
    assert_eq!(streams[0], line);
    assert_eq!(lines, (1, 0), "one line, though it had no newline");
}

#[test]
fn an_open_line_is_flushed_as_a_part_and_ended_later() {
    let mut batcher = Batcher::new(7);
    let mut batches = Vec::new();
    batcher.take(Output::Stdout, b"name? ");
    batcher.flush_open_lines();
    drain(&mut batcher, &mut batches);
    assert_eq!(batches[0].lines, (0, 0));
    batcher.end(Output::Stdout);
    drain(&mut batcher, &mut batches);
    let (streams, _, lines) = read_back(&batches);
    assert_eq!(streams[0], b"name? ");
    assert_eq!(lines, (1, 0));
    // A stream that ended after its newline sends no end piece.
    let mut batcher = Batcher::new(7);
    batcher.take(Output::Stderr, b"done\n");
    batcher.end(Output::Stderr);
    let ready = batcher.take_batch().expect("a batch");
    assert_eq!(decode(&ready.payload).expect("decode").pieces.len(), 1);
}

proptest! {
    #[test]
    fn any_chunking_of_both_streams_comes_back_byte_for_byte(
        writes in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'x'), any::<u8>()], 0..3000usize)),
            0..30,
        ),
        flushes in proptest::collection::vec(any::<bool>(), 30),
    ) {
        let mut batcher = Batcher::new(7);
        let mut batches = Vec::new();
        let mut expected = [Vec::new(), Vec::new()];
        for (i, (stderr, bytes)) in writes.iter().enumerate() {
            let output = if *stderr { Output::Stderr } else { Output::Stdout };
            expected[index(output)].extend_from_slice(bytes);
            batcher.take(output, bytes);
            if flushes[i] {
                batcher.flush_open_lines();
            }
            if flushes[i] || batcher.is_full() {
                drain(&mut batcher, &mut batches);
            }
        }
        batcher.end(Output::Stdout);
        batcher.end(Output::Stderr);
        drain(&mut batcher, &mut batches);
        let (streams, seqs, lines) = read_back(&batches);
        prop_assert_eq!(&streams[0], &expected[0]);
        prop_assert_eq!(&streams[1], &expected[1]);
        prop_assert_eq!(seqs, (0..seqs_len(&batches)).collect::<Vec<u64>>());
        let count = |bytes: &[u8]| {
            let newlines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
            newlines + u64::from(bytes.last().is_some_and(|b| *b != b'\n'))
        };
        prop_assert_eq!(lines, (count(&expected[0]), count(&expected[1])));
    }
}

fn seqs_len(batches: &[Ready]) -> u64 {
    batches
        .iter()
        .map(|b| decode(&b.payload).expect("decode").pieces.len() as u64)
        .sum()
}
