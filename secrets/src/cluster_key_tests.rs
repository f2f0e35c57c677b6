//! Tests for the cluster key: round trips, every way decryption must fail,
//! the byte format, and decryption of arbitrary bytes never panicking.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use proptest::prelude::*;

use super::*;

const CONTEXT: &str = "app/DATABASE_URL";
const PLAINTEXT: &[u8] = b"postgres://user:hunter2@db/app";

#[test]
fn round_trip() {
    let key = ClusterKey::generate().unwrap();
    let sealed = key.encrypt(CONTEXT, PLAINTEXT).unwrap();
    assert_eq!(key.decrypt(CONTEXT, &sealed).unwrap().as_slice(), PLAINTEXT);
}

#[test]
fn empty_plaintext_round_trips() {
    let key = ClusterKey::generate().unwrap();
    let sealed = key.encrypt("", b"").unwrap();
    assert_eq!(sealed.len(), 1 + cipher::NONCE_LEN + cipher::TAG_LEN);
    assert!(key.decrypt("", &sealed).unwrap().is_empty());
}

#[test]
fn format_is_version_nonce_ciphertext_with_context_as_associated_data() {
    let key = ClusterKey(Zeroizing::new([7u8; 32]));
    let sealed = key.encrypt(CONTEXT, PLAINTEXT).unwrap();
    assert_eq!(sealed[0], 1);
    assert_eq!(sealed.len(), 1 + 24 + PLAINTEXT.len() + 16);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(&[7u8; 32]));
    let opened = cipher
        .decrypt(
            XNonce::from_slice(&sealed[1..25]),
            Payload {
                msg: &sealed[25..],
                aad: CONTEXT.as_bytes(),
            },
        )
        .unwrap();
    assert_eq!(opened, PLAINTEXT);
}

#[test]
fn same_plaintext_encrypts_differently() {
    let key = ClusterKey::generate().unwrap();
    let a = key.encrypt(CONTEXT, PLAINTEXT).unwrap();
    let b = key.encrypt(CONTEXT, PLAINTEXT).unwrap();
    assert_ne!(a, b);
    assert_ne!(a[1..25], b[1..25], "nonces must differ");
}

#[test]
fn another_key_fails() {
    let sealed = ClusterKey::generate()
        .unwrap()
        .encrypt(CONTEXT, PLAINTEXT)
        .unwrap();
    let other = ClusterKey::generate().unwrap();
    assert!(matches!(
        other.decrypt(CONTEXT, &sealed),
        Err(SecretsError::Decrypt)
    ));
}

#[test]
fn another_context_fails() {
    let key = ClusterKey::generate().unwrap();
    let sealed = key.encrypt("app-a/KEY", PLAINTEXT).unwrap();
    assert!(matches!(
        key.decrypt("app-b/KEY", &sealed),
        Err(SecretsError::Decrypt)
    ));
    assert!(key.decrypt("app-a/KEY2", &sealed).is_err());
    assert!(key.decrypt("", &sealed).is_err());
}

#[test]
fn any_flipped_bit_fails() {
    let key = ClusterKey::generate().unwrap();
    let sealed = key.encrypt(CONTEXT, PLAINTEXT).unwrap();
    for byte in 0..sealed.len() {
        for bit in 0..8 {
            let mut tampered = sealed.clone();
            tampered[byte] ^= 1 << bit;
            assert!(
                key.decrypt(CONTEXT, &tampered).is_err(),
                "flipping bit {bit} of byte {byte} went unnoticed"
            );
        }
    }
}

#[test]
fn truncated_input_fails() {
    let key = ClusterKey::generate().unwrap();
    let sealed = key.encrypt(CONTEXT, PLAINTEXT).unwrap();
    for len in 0..sealed.len() {
        assert!(
            key.decrypt(CONTEXT, &sealed[..len]).is_err(),
            "truncated to {len} bytes"
        );
    }
    assert!(matches!(
        key.decrypt(CONTEXT, &sealed[..10]),
        Err(SecretsError::Truncated { len: 10, min: 41 })
    ));
}

#[test]
fn appended_bytes_fail() {
    let key = ClusterKey::generate().unwrap();
    let mut sealed = key.encrypt(CONTEXT, PLAINTEXT).unwrap();
    sealed.push(0);
    assert!(key.decrypt(CONTEXT, &sealed).is_err());
}

#[test]
fn wrong_version_fails() {
    let key = ClusterKey::generate().unwrap();
    let mut sealed = key.encrypt(CONTEXT, PLAINTEXT).unwrap();
    for version in [0u8, 2, 0xff] {
        sealed[0] = version;
        let err = key.decrypt(CONTEXT, &sealed).unwrap_err();
        assert!(matches!(err, SecretsError::UnsupportedVersion(v) if v == version));
        assert!(err.to_string().contains("version"), "{err}");
    }
}

#[test]
fn key_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/cluster.key");
    let created = ClusterKey::load_or_create(&path).unwrap();
    let sealed = created.encrypt(CONTEXT, PLAINTEXT).unwrap();

    let loaded = ClusterKey::load(&path).unwrap();
    assert_eq!(
        loaded.decrypt(CONTEXT, &sealed).unwrap().as_slice(),
        PLAINTEXT
    );
    let reloaded = ClusterKey::load_or_create(&path).unwrap();
    assert_eq!(reloaded.0, created.0);
}

#[test]
fn load_of_missing_file_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.key");
    let err = ClusterKey::load(&path).unwrap_err();
    assert!(err.to_string().contains("absent.key"), "{err}");
    assert!(!path.exists(), "load must not create the file");
}

#[test]
fn debug_hides_the_key() {
    let key = ClusterKey(Zeroizing::new([0xab; 32]));
    assert_eq!(format!("{key:?}"), "ClusterKey(..)");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_input_never_decrypts(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let key = ClusterKey::generate().unwrap();
        prop_assert!(key.decrypt(CONTEXT, &bytes).is_err());
    }

    #[test]
    fn arbitrary_versioned_input_never_decrypts(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let key = ClusterKey::generate().unwrap();
        let mut sealed = vec![cipher::VERSION];
        sealed.extend_from_slice(&bytes);
        prop_assert!(key.decrypt(CONTEXT, &sealed).is_err());
    }

    #[test]
    fn arbitrary_plaintexts_and_contexts_round_trip(
        context in any::<String>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let key = ClusterKey::generate().unwrap();
        let sealed = key.encrypt(&context, &plaintext).unwrap();
        let opened = key.decrypt(&context, &sealed).unwrap();
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
    }
}
