use super::*;
use proptest::prelude::*;

const CONTEXT: &str = "reef-backup/shop/1/node/data";

fn make(cluster: &ClusterKey, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let read = encrypt(&cluster.backup_key().public(), CONTEXT, data, &mut out).expect("encrypts");
    assert_eq!(read, data.len() as u64);
    out
}

fn open(cluster: &ClusterKey, part: &[u8]) -> Result<Vec<u8>, BackupError> {
    let mut input = part;
    let header = read_header(&mut input)?;
    let key = cluster.backup_key().open(CONTEXT, &header)?;
    let mut out = Vec::new();
    decrypt(&key, CONTEXT, input, &mut out)?;
    Ok(out)
}

#[test]
fn parts_of_every_size_round_trip() {
    let cluster = ClusterKey::generate().expect("key");
    for len in [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let part = make(&cluster, &data);
        assert_eq!(open(&cluster, &part).expect("opens"), data, "{len} bytes");
    }
}

#[test]
fn the_backup_key_is_the_same_for_the_same_cluster_key_only() {
    let a = ClusterKey::generate().expect("key");
    let b = ClusterKey::generate().expect("key");
    assert_eq!(a.backup_key().public(), a.backup_key().public());
    assert_ne!(a.backup_key().public(), b.backup_key().public());
}

#[test]
fn another_clusters_part_is_refused_naming_why() {
    let a = ClusterKey::generate().expect("key");
    let b = ClusterKey::generate().expect("key");
    let part = make(&a, b"rows");
    let err = open(&b, &part).expect_err("another cluster's");
    assert!(matches!(err, BackupError::OtherCluster { .. }), "{err}");
    assert!(err.to_string().contains("another cluster"), "{err}");
}

#[test]
fn a_changed_byte_anywhere_is_refused() {
    let cluster = ClusterKey::generate().expect("key");
    let data = vec![7u8; 2 * FRAME + 10];
    let part = make(&cluster, &data);
    for at in [0, 9, 45, 60, 120, part.len() / 2, part.len() - 1] {
        let mut bad = part.clone();
        bad[at] ^= 0x40;
        assert!(open(&cluster, &bad).is_err(), "byte {at} changed");
    }
}

#[test]
fn a_part_cut_short_or_extended_is_refused() {
    let cluster = ClusterKey::generate().expect("key");
    let part = make(&cluster, &vec![1u8; 2 * FRAME]);
    // Cut at a frame boundary: every frame left decrypts, none says it is last.
    let first_frame_end = 8
        + 32
        + 2
        + {
            let mut input = &part[..];
            read_header(&mut input).expect("header").sealed_key.len()
        }
        + 4
        + FRAME
        + 16;
    let err = open(&cluster, &part[..first_frame_end]).expect_err("cut");
    assert!(matches!(err, BackupError::Truncated { frames: 1 }), "{err}");
    let mut longer = part.clone();
    longer.push(0);
    assert!(open(&cluster, &longer).is_err());
}

#[test]
fn a_key_sealed_to_a_node_opens_there_only() {
    let cluster = ClusterKey::generate().expect("key");
    let part = make(&cluster, b"data");
    let mut input = &part[..];
    let header = read_header(&mut input).expect("header");
    let key = cluster.backup_key().open(CONTEXT, &header).expect("opens");
    let node = NodeKey::generate().expect("node");
    let other = NodeKey::generate().expect("node");
    let sealed = crate::seal(&node.public(), CONTEXT, key.as_slice()).expect("seals");
    let opened = open_for_node(&node, CONTEXT, &sealed).expect("opens");
    assert_eq!(*opened, *key);
    assert!(open_for_node(&other, CONTEXT, &sealed).is_err());
    assert!(open_for_node(&node, "reef-backup/other", &sealed).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let cluster = ClusterKey::generate().expect("key");
        let _ = open(&cluster, &bytes);
        let mut input = &bytes[..];
        let _ = decrypt(&[3u8; 32], CONTEXT, &mut input, std::io::sink());
    }

    #[test]
    fn mutated_parts_never_open(data in proptest::collection::vec(any::<u8>(), 0..3000), at in any::<usize>(), bit in 0u8..8) {
        let cluster = ClusterKey::generate().expect("key");
        let mut part = make(&cluster, &data);
        let at = at % part.len();
        part[at] ^= 1 << bit;
        prop_assert!(open(&cluster, &part).is_err());
    }
}
