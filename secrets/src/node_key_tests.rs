//! Tests for node keys and sealing: round trips, every way opening must fail,
//! low-order points, the byte format, key files, and opening arbitrary bytes
//! never panicking.

use std::os::unix::fs::PermissionsExt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use proptest::prelude::*;

use super::*;

const CONTEXT: &str = "app/API_TOKEN";
const PLAINTEXT: &[u8] = b"tok_0123456789";

#[test]
fn seal_open_round_trip() {
    let node = NodeKey::generate().unwrap();
    let sealed = seal(&node.public(), CONTEXT, PLAINTEXT).unwrap();
    assert_eq!(node.open(CONTEXT, &sealed).unwrap().as_slice(), PLAINTEXT);
}

#[test]
fn format_matches_the_documented_derivation() {
    let secret = [9u8; 32];
    let node = NodeKey(StaticSecret::from(secret));
    let sealed = seal(&node.public(), CONTEXT, PLAINTEXT).unwrap();
    assert_eq!(sealed[0], 1);
    assert_eq!(sealed.len(), 1 + 32 + 24 + PLAINTEXT.len() + 16);

    // Re-derive the key from the description alone, not from `seal_key`.
    let ephemeral: [u8; 32] = sealed[1..33].try_into().unwrap();
    let shared = StaticSecret::from(secret).diffie_hellman(&PublicKey::from(ephemeral));
    let mut hasher = Sha256::new();
    hasher.update(b"reef-seal-v1");
    hasher.update(ephemeral);
    hasher.update(node.public());
    hasher.update(shared.as_bytes());
    let key = hasher.finalize();
    let opened = XChaCha20Poly1305::new(Key::from_slice(&key))
        .decrypt(
            XNonce::from_slice(&sealed[33..57]),
            Payload {
                msg: &sealed[57..],
                aad: CONTEXT.as_bytes(),
            },
        )
        .unwrap();
    assert_eq!(opened, PLAINTEXT);
}

#[test]
fn each_seal_uses_a_fresh_ephemeral_key_and_nonce() {
    let node = NodeKey::generate().unwrap();
    let a = seal(&node.public(), CONTEXT, PLAINTEXT).unwrap();
    let b = seal(&node.public(), CONTEXT, PLAINTEXT).unwrap();
    assert_ne!(a[1..33], b[1..33], "ephemeral keys must differ");
    assert_ne!(a[33..57], b[33..57], "nonces must differ");
}

#[test]
fn another_node_cannot_open() {
    let node = NodeKey::generate().unwrap();
    let other = NodeKey::generate().unwrap();
    let sealed = seal(&node.public(), CONTEXT, PLAINTEXT).unwrap();
    assert!(matches!(
        other.open(CONTEXT, &sealed),
        Err(SecretsError::Decrypt)
    ));
}

#[test]
fn another_context_fails() {
    let node = NodeKey::generate().unwrap();
    let sealed = seal(&node.public(), "app-a/TOKEN", PLAINTEXT).unwrap();
    assert!(matches!(
        node.open("app-b/TOKEN", &sealed),
        Err(SecretsError::Decrypt)
    ));
}

#[test]
fn any_flipped_bit_fails() {
    let node = NodeKey::generate().unwrap();
    let sealed = seal(&node.public(), CONTEXT, PLAINTEXT).unwrap();
    for byte in 0..sealed.len() {
        for bit in 0..8 {
            let mut tampered = sealed.clone();
            tampered[byte] ^= 1 << bit;
            assert!(
                node.open(CONTEXT, &tampered).is_err(),
                "flipping bit {bit} of byte {byte} went unnoticed"
            );
        }
    }
}

#[test]
fn truncated_input_and_wrong_version_fail() {
    let node = NodeKey::generate().unwrap();
    let sealed = seal(&node.public(), CONTEXT, PLAINTEXT).unwrap();
    for len in 0..sealed.len() {
        assert!(node.open(CONTEXT, &sealed[..len]).is_err(), "{len} bytes");
    }
    let mut wrong_version = sealed.clone();
    wrong_version[0] = 2;
    assert!(matches!(
        node.open(CONTEXT, &wrong_version),
        Err(SecretsError::UnsupportedVersion(2))
    ));
}

#[test]
fn low_order_points_are_refused() {
    // The identity and a point of order 8 both give an all-zero shared secret.
    let mut order_eight = [0u8; 32];
    order_eight[0] = 1;
    for point in [[0u8; 32], order_eight] {
        assert!(matches!(
            seal(&point, CONTEXT, PLAINTEXT),
            Err(SecretsError::LowOrderPoint)
        ));
    }

    let node = NodeKey::generate().unwrap();
    let mut sealed = seal(&node.public(), CONTEXT, PLAINTEXT).unwrap();
    sealed[1..33].fill(0);
    assert!(matches!(
        node.open(CONTEXT, &sealed),
        Err(SecretsError::LowOrderPoint)
    ));
}

#[test]
fn key_file_is_private_and_reloads_to_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent/node.key");
    let created = NodeKey::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let loaded = NodeKey::load_or_create(&path).unwrap();
    assert_eq!(loaded.public(), created.public());
    let sealed = seal(&created.public(), CONTEXT, PLAINTEXT).unwrap();
    assert_eq!(loaded.open(CONTEXT, &sealed).unwrap().as_slice(), PLAINTEXT);
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    NodeKey::load_or_create(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = NodeKey::load_or_create(&path).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn debug_hides_the_key() {
    let node = NodeKey(StaticSecret::from([3u8; 32]));
    assert_eq!(format!("{node:?}"), "NodeKey(..)");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_input_never_opens(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let node = NodeKey::generate().unwrap();
        prop_assert!(node.open(CONTEXT, &bytes).is_err());
    }

    #[test]
    fn arbitrary_versioned_input_never_opens(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let node = NodeKey::generate().unwrap();
        let mut sealed = vec![cipher::VERSION];
        sealed.extend_from_slice(&bytes);
        prop_assert!(node.open(CONTEXT, &sealed).is_err());
    }

    #[test]
    fn arbitrary_plaintexts_and_contexts_round_trip(
        context in any::<String>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let node = NodeKey::generate().unwrap();
        let sealed = seal(&node.public(), &context, &plaintext).unwrap();
        let opened = node.open(&context, &sealed).unwrap();
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
    }
}
