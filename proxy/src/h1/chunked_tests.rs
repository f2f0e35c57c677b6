use proptest::prelude::*;

use super::*;

/// Scans `body` fed in pieces cut at `cuts`; returns the bytes that belonged
/// to the message, or the error.
fn scan(body: &[u8], cuts: &[usize]) -> Result<(usize, ChunkedScanner), ChunkedError> {
    let mut scanner = ChunkedScanner::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (body.len() + 1)).collect();
    points.push(body.len());
    points.sort_unstable();
    let mut used = 0;
    for point in points {
        if point < at {
            continue;
        }
        used += scanner.feed(&body[at..point])?;
        at = point;
        if scanner.is_done() {
            break;
        }
    }
    Ok((used, scanner))
}

fn encode(chunks: &[Vec<u8>], extension: bool, trailers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks.iter().filter(|chunk| !chunk.is_empty()) {
        out.extend_from_slice(format!("{:X}", chunk.len()).as_bytes());
        if extension {
            out.extend_from_slice(b" ;name=\"value\"");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn a_simple_body_ends_where_its_last_line_does() {
    let body = b"5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    let mut scanner = ChunkedScanner::new();
    let used = scanner.feed(body).unwrap();
    assert!(scanner.is_done());
    assert_eq!(&body[used..], b"GET / HTTP/1.1\r\n");
    assert_eq!(scanner.data_bytes(), 12);
}

#[test]
fn trailers_are_part_of_the_body() {
    let body = b"1\r\na\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n";
    let mut scanner = ChunkedScanner::new();
    assert_eq!(scanner.feed(body), Ok(body.len()));
    assert!(scanner.is_done());
}

#[test]
fn an_incomplete_body_is_not_done() {
    let mut scanner = ChunkedScanner::new();
    assert_eq!(scanner.feed(b"10\r\nabc"), Ok(7));
    assert!(!scanner.is_done());
    assert_eq!(scanner.data_bytes(), 3);
}

#[test]
fn bad_framing_is_refused() {
    let cases: [(&[u8], ChunkedError); 9] = [
        (b"\r\n", ChunkedError::BadSize),
        (b"x\r\n", ChunkedError::BadSize),
        (b"-1\r\n", ChunkedError::BadSize),
        (b"1 2\r\n", ChunkedError::BadSize),
        (b"11111111111111111\r\n", ChunkedError::BadSize),
        (b"1\nx\r\n", ChunkedError::BadSize),
        (b"1\r\nxy\r\n", ChunkedError::BadChunkEnd),
        (b"0\r\nA: b\n\r\n", ChunkedError::BadLineEnd),
        (b"1;ext\nx", ChunkedError::BadLineEnd),
    ];
    for (body, error) in cases {
        assert_eq!(
            ChunkedScanner::new().feed(body),
            Err(error),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn size_lines_and_trailers_are_bounded() {
    let mut long_extension = b"1;".to_vec();
    long_extension.resize(MAX_SIZE_LINE + 10, b'a');
    assert_eq!(
        ChunkedScanner::new().feed(&long_extension),
        Err(ChunkedError::LongSizeLine)
    );
    let mut long_trailer = b"0\r\nX: ".to_vec();
    long_trailer.resize(MAX_TRAILERS + 10, b'a');
    assert_eq!(
        ChunkedScanner::new().feed(&long_trailer),
        Err(ChunkedError::LongTrailers)
    );
}

#[test]
fn the_largest_size_is_accepted() {
    let mut scanner = ChunkedScanner::new();
    assert_eq!(scanner.feed(b"ffffffffffffffff\r\nab"), Ok(20));
    assert_eq!(scanner.data_bytes(), 2);
}

proptest! {
    #[test]
    fn any_valid_encoding_scans_to_its_exact_end(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        extension in any::<bool>(),
        trailers in prop::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,20}"), 0..3),
        next in prop::collection::vec(any::<u8>(), 0..40),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let body = encode(&chunks, extension, &trailers);
        let mut stream = body.clone();
        stream.extend_from_slice(&next);
        let (used, scanner) = scan(&stream, &cuts).unwrap();
        prop_assert!(scanner.is_done());
        prop_assert_eq!(used, body.len());
        let data: usize = chunks.iter().map(Vec::len).sum();
        prop_assert_eq!(scanner.data_bytes(), data as u64);
    }

    #[test]
    fn any_bytes_scan_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        if let Ok((used, _)) = scan(&bytes, &cuts) {
            prop_assert!(used <= bytes.len());
        }
    }

    #[test]
    fn mutated_encodings_never_overrun(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 1..4),
        position in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let mut body = encode(&chunks, false, &[]);
        let at = position % body.len();
        body[at] = byte;
        if let Ok((used, scanner)) = scan(&body, &[]) {
            prop_assert!(used <= body.len());
            prop_assert!(scanner.data_bytes() <= body.len() as u64);
        }
    }
}

/// Decodes `body` fed in pieces cut at `cuts`: its data, and its trailers.
fn decode_all(body: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<http::HeaderMap>) {
    let mut scanner = ChunkedScanner::new();
    let mut data = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (body.len() + 1)).collect();
    points.push(body.len());
    points.sort_unstable();
    let mut at = 0;
    for point in points {
        while at < point && !scanner.is_done() {
            let (used, range) = scanner.decode(&body[at..point]).expect("valid");
            data.extend_from_slice(&body[at..point][range]);
            at += used;
        }
    }
    assert!(scanner.is_done());
    (data, scanner.trailers())
}

#[test]
fn decoding_gives_the_data_and_the_trailers() {
    let (data, trailers) = decode_all(
        b"5\r\nhello\r\n6;x\r\n world\r\n0\r\nX-Sum: 11\r\nX-B: c\r\n\r\n",
        &[3, 9, 20],
    );
    assert_eq!(data, b"hello world");
    let trailers = trailers.expect("trailers");
    assert_eq!(trailers["x-sum"], "11");
    assert_eq!(trailers["x-b"], "c");
    assert_eq!(decode_all(b"0\r\n\r\n", &[]).1, None);
}

proptest! {
    #[test]
    fn decoding_any_valid_encoding_gives_back_its_data(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..6),
        extension in any::<bool>(),
        trailers in prop::collection::vec(("[A-Za-z-]{1,12}", "[!-~]{1,20}"), 0..3),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let body = encode(&chunks, extension, &trailers);
        let (data, decoded) = decode_all(&body, &cuts);
        prop_assert_eq!(data, chunks.concat());
        prop_assert_eq!(decoded.map_or(0, |t| t.len()), trailers.len());
    }
}
