use super::*;
use proptest::prelude::*;

fn batch(first_seq: u64, pieces: &[(Output, PieceEnd, &[u8])]) -> Vec<u8> {
    let mut writer = BatchWriter::new(99, first_seq);
    for (output, end, bytes) in pieces {
        writer.push(*output, *end, bytes);
    }
    writer.finish()
}

#[test]
fn pieces_come_back_in_order_with_their_sequence() {
    let bytes = batch(
        7,
        &[
            (Output::Stdout, PieceEnd::Line, b"out"),
            (Output::Stderr, PieceEnd::Line, b"err"),
            (Output::Stdout, PieceEnd::End, b"tail"),
        ],
    );
    let batch_read = decode(&bytes).expect("decode");
    assert_eq!(batch_read.source, 99);
    let pieces = batch_read.pieces;
    let seen: Vec<_> = pieces
        .iter()
        .map(|p| (p.seq, p.output, p.end, p.bytes))
        .collect();
    assert_eq!(
        seen,
        vec![
            (7, Output::Stdout, PieceEnd::Line, &b"out"[..]),
            (8, Output::Stderr, PieceEnd::Line, &b"err"[..]),
            (9, Output::Stdout, PieceEnd::End, &b"tail"[..]),
        ]
    );
}

#[test]
fn bad_input_is_named() {
    assert_eq!(decode(b"nope"), Err(LogBatchError::BadMagic));
    assert_eq!(decode(b"RLOG"), Err(LogBatchError::Truncated("the header")));
    assert_eq!(
        decode(b"RLOG\x02\x00\x00\x00"),
        Err(LogBatchError::UnsupportedFormat(2))
    );
    assert_eq!(
        decode(b"RLOG\x01\x00\x00\x01\x07\x00"),
        Err(LogBatchError::BadTag(7))
    );
    assert_eq!(
        decode(b"RLOG\x01\x00\x00\x01\x00\x05ab"),
        Err(LogBatchError::Truncated("a piece"))
    );
    assert_eq!(
        decode(b"RLOG\x01\x00\x00\x00x"),
        Err(LogBatchError::TrailingBytes(1))
    );
    let mut overflow = b"RLOG\x01\x00".to_vec();
    overflow.extend([0xff; 9]);
    overflow.extend([0x01, 0x01]);
    assert_eq!(decode(&overflow), Err(LogBatchError::SeqOverflow));
    let mut long = b"RLOG\x01".to_vec();
    long.extend([0xff; 10]);
    assert_eq!(decode(&long), Err(LogBatchError::BadVarint));
}

#[test]
fn a_huge_claimed_count_allocates_nothing_up_front() {
    let mut bytes = b"RLOG\x01\x00\x00".to_vec();
    put_varint(&mut bytes, u64::MAX / 2);
    assert_eq!(decode(&bytes), Err(LogBatchError::Truncated("a piece")));
}

#[test]
fn the_joiner_rebuilds_long_lines_per_stream() {
    let bytes = batch(
        0,
        &[
            (Output::Stdout, PieceEnd::Part, b"ab"),
            (Output::Stderr, PieceEnd::Line, b"e"),
            (Output::Stdout, PieceEnd::Part, b"cd"),
            (Output::Stdout, PieceEnd::End, b""),
        ],
    );
    let mut joiner = LineJoiner::default();
    let lines: Vec<_> = decode(&bytes)
        .expect("decode")
        .pieces
        .iter()
        .filter_map(|p| joiner.push(p))
        .collect();
    assert_eq!(
        lines,
        vec![
            JoinedLine {
                output: Output::Stderr,
                bytes: b"e".to_vec(),
                newline: true
            },
            JoinedLine {
                output: Output::Stdout,
                bytes: b"abcd".to_vec(),
                newline: false
            },
        ]
    );
}

fn piece() -> impl Strategy<Value = (bool, u8, Vec<u8>)> {
    (
        any::<bool>(),
        0u8..3,
        proptest::collection::vec(any::<u8>(), 0..300),
    )
}

fn end_of(n: u8) -> PieceEnd {
    match n {
        0 => PieceEnd::Line,
        1 => PieceEnd::Part,
        _ => PieceEnd::End,
    }
}

proptest! {
    #[test]
    fn every_batch_round_trips(
        source in any::<u64>(),
        first_seq in 0u64..u64::MAX / 2,
        pieces in proptest::collection::vec(piece(), 0..40),
    ) {
        let mut writer = BatchWriter::new(source, first_seq);
        for (stderr, end, bytes) in &pieces {
            let output = if *stderr { Output::Stderr } else { Output::Stdout };
            writer.push(output, end_of(*end), bytes);
        }
        prop_assert_eq!(writer.next_seq(), first_seq + pieces.len() as u64);
        let encoded = writer.finish();
        let decoded = decode(&encoded).expect("a batch this build wrote");
        prop_assert_eq!(decoded.source, source);
        let decoded = decoded.pieces;
        prop_assert_eq!(decoded.len(), pieces.len());
        for (i, (got, (stderr, end, bytes))) in decoded.iter().zip(&pieces).enumerate() {
            prop_assert_eq!(got.seq, first_seq + i as u64);
            prop_assert_eq!(got.output == Output::Stderr, *stderr);
            prop_assert_eq!(got.end, end_of(*end));
            prop_assert_eq!(got.bytes, &bytes[..]);
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
        let mut framed = MAGIC.to_vec();
        framed.push(FORMAT);
        framed.extend_from_slice(&bytes);
        if let Ok(batch) = decode(&framed) {
            let mut joiner = LineJoiner::default();
            for piece in &batch.pieces {
                let _ = joiner.push(piece);
            }
        }
    }

    #[test]
    fn a_cut_or_altered_batch_is_refused_or_read_within_bounds(
        pieces in proptest::collection::vec(piece(), 1..10),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut writer = BatchWriter::new(1, 0);
        for (stderr, end, bytes) in &pieces {
            let output = if *stderr { Output::Stderr } else { Output::Stdout };
            writer.push(output, end_of(*end), bytes);
        }
        let encoded = writer.finish();
        let short = &encoded[..cut.index(encoded.len())];
        prop_assert!(decode(short).is_err(), "a cut batch is refused");
        let mut altered = encoded.clone();
        let at = flip.index(altered.len());
        altered[at] ^= 0x55;
        if let Ok(decoded) = decode(&altered) {
            let total: usize = decoded.pieces.iter().map(|p| p.bytes.len()).sum();
            prop_assert!(total <= altered.len());
        }
    }
}
