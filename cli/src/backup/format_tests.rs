use super::*;
use proptest::prelude::*;

fn header() -> Header {
    Header {
        format: 1,
        cluster: "c1".into(),
        operator: "OABC".into(),
        created_at_ms: 7,
        reef: "0.1.0".into(),
    }
}

fn write(key: &ClusterKey, records: &[Record]) -> Vec<u8> {
    let mut writer = Writer::new(Vec::new(), key, &header()).expect("writer");
    for record in records {
        writer.record(record).expect("record");
    }
    writer.finish().expect("finish")
}

fn read_all(key: &ClusterKey, bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
    let mut reader = Reader::new(bytes, key)?;
    let mut out = Vec::new();
    while let Some(record) = reader.next_record()? {
        out.push(record);
    }
    Ok(out)
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (
            "[a-z-]{1,12}",
            "[a-z0-9.]{1,20}",
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(bucket, key, value)| Record::Entry { bucket, key, value }),
        ("[a-f0-9]{8}", 0u64..1_000_000).prop_map(|(name, size)| Record::Object { name, size }),
        proptest::collection::vec(any::<u8>(), 0..2000).prop_map(Record::Data),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn what_is_written_is_read_back(records in proptest::collection::vec(record(), 0..40)) {
        let key = ClusterKey::generate().expect("key");
        let bytes = write(&key, &records);
        let read = read_all(&key, &bytes).expect("read");
        let (end, body) = read.split_last().expect("an end");
        prop_assert_eq!(body, &records[..]);
        let is_end = matches!(end, Record::End { .. });
        prop_assert!(is_end);
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused(
        records in proptest::collection::vec(record(), 1..20),
        at in any::<proptest::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let key = ClusterKey::generate().expect("key");
        let mut bytes = write(&key, &records);
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        prop_assert!(read_all(&key, &bytes).is_err());
    }

    #[test]
    fn a_backup_cut_anywhere_is_refused(
        records in proptest::collection::vec(record(), 1..20),
        at in any::<proptest::sample::Index>(),
    ) {
        let key = ClusterKey::generate().expect("key");
        let bytes = write(&key, &records);
        let cut = at.index(bytes.len());
        prop_assert!(read_all(&key, &bytes[..cut]).is_err());
    }

    #[test]
    fn arbitrary_bytes_are_refused_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let key = ClusterKey::generate().expect("key");
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        prop_assert!(read_all(&key, &bytes).is_err());
        prop_assert!(read_all(&key, &with_magic).is_err());
    }
}

#[test]
fn another_clusters_key_is_told_whose_backup_it_is() {
    let key = ClusterKey::generate().expect("key");
    let other = ClusterKey::generate().expect("key");
    let bytes = write(&key, &[Record::Data(vec![1, 2, 3])]);
    let err = read_all(&other, &bytes).expect_err("the wrong key");
    assert!(
        matches!(&err, FormatError::WrongKey { cluster, .. } if cluster == "c1"),
        "{err}"
    );
    assert!(err.to_string().contains("--key"), "{err}");
    let err = read_all(&key, b"PK\x03\x04 a zip file").expect_err("not a backup");
    assert!(matches!(err, FormatError::Magic), "{err}");
}

#[test]
fn large_contents_span_chunks_and_their_order_is_kept() {
    let key = ClusterKey::generate().expect("key");
    let records: Vec<Record> = (0..5)
        .map(|i| Record::Data(vec![i as u8; CHUNK / 2 + 17]))
        .collect();
    let bytes = write(&key, &records);
    assert_eq!(&read_all(&key, &bytes).expect("read")[..5], &records[..]);

    // Two chunks swapped: refused.
    let mut input = &bytes[..];
    let (_, _) = read_header(&mut input).expect("header");
    let start = bytes.len() - input.len();
    let first_len = u32::from_be_bytes(bytes[start..start + 4].try_into().expect("len")) as usize;
    let second = start + 4 + first_len;
    let second_len =
        u32::from_be_bytes(bytes[second..second + 4].try_into().expect("len")) as usize;
    let mut swapped = bytes[..start].to_vec();
    swapped.extend_from_slice(&bytes[second..second + 4 + second_len]);
    swapped.extend_from_slice(&bytes[start..second]);
    swapped.extend_from_slice(&bytes[second + 4 + second_len..]);
    assert_eq!(swapped.len(), bytes.len());
    assert!(read_all(&key, &swapped).is_err());
    // And a valid backup with something after its end: refused.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(read_all(&key, &longer).is_err());
}
