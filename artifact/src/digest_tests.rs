//! Tests for the digest helpers against published sha256 vectors.

use std::io::{self, Read};

use super::*;

#[test]
fn known_vectors() {
    assert_eq!(
        sha256_hex(&b""[..]).unwrap(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(&b"abc"[..]).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn streams_more_than_one_buffer() {
    // One million 'a's: the FIPS 180-2 long-message vector, read in many chunks.
    let reader = io::repeat(b'a').take(1_000_000);
    assert_eq!(
        sha256_hex(reader).unwrap(),
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    );
}

#[test]
fn read_errors_are_passed_through() {
    struct Failing;
    impl io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let err = sha256_hex(Failing).unwrap_err();
    assert_eq!(err.to_string(), "disk on fire");
}

#[test]
fn digest_validation() {
    let good = sha256_hex(&b"x"[..]).unwrap();
    assert!(is_valid_digest(&good));
    assert!(!is_valid_digest(""));
    assert!(!is_valid_digest(&good[..63]));
    assert!(!is_valid_digest(&format!("{good}0")));
    assert!(!is_valid_digest(&good.to_uppercase()));
    assert!(!is_valid_digest(&format!("{}g", &good[..63])));
    assert!(!is_valid_digest(&format!("../{}", &good[..61])));
    // 64 bytes but multi-byte characters: still refused.
    assert!(!is_valid_digest(&"é".repeat(32)));
}
