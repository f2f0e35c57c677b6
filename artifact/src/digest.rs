//! Content digests: the sha256 that names an artifact, computed while
//! streaming, and the check that a digest received from elsewhere is well
//! formed before it is used to name anything.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// Length of a sha256 digest in lowercase hex.
const DIGEST_HEX_LEN: usize = 64;

/// Returns the sha256 of everything `reader` yields, as 64 lowercase hex
/// characters. Reads until end of stream; I/O errors are passed through.
pub fn sha256_hex(mut reader: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
    }
    Ok(to_hex(&hasher.finalize()))
}

/// Tells whether `s` is a sha256 digest as [`sha256_hex`] writes it: exactly
/// 64 characters, each `0-9` or `a-f` (uppercase is refused so that one
/// artifact has exactly one name).
pub fn is_valid_digest(s: &str) -> bool {
    s.len() == DIGEST_HEX_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
