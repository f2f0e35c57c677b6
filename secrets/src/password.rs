//! Generated passwords for the services reef runs for an app: letters and
//! digits only, so they go into a URL or a configuration file as they are.

use crate::SecretsError;
use zeroize::Zeroizing;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A random password of `len` letters and digits (32 give about 190 bits).
pub fn generate(len: usize) -> Result<Zeroizing<String>, SecretsError> {
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut bytes = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        getrandom::getrandom(&mut bytes[..]).map_err(SecretsError::Random)?;
        // 248 = 4 * 62: bytes above it are dropped, so every character is equally likely.
        for b in bytes.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_long_distinct_and_plain() {
        let a = super::generate(32).unwrap();
        let b = super::generate(32).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(*a, *b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
