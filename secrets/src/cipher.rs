//! The XChaCha20-Poly1305 layer shared by the cluster key and by sealing to a
//! node: random bytes, the version byte, and `nonce || ciphertext+tag` framing.
//! Both formats start with [`VERSION`] so a later format can be told apart.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::SecretsError;

/// The format version byte every sealed secret starts with.
pub(crate) const VERSION: u8 = 1;
/// XChaCha20 nonce length: long enough that random nonces never collide.
pub(crate) const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;

/// `N` bytes from the operating system's CSPRNG, wiped when dropped.
pub(crate) fn random<const N: usize>() -> Result<Zeroizing<[u8; N]>, SecretsError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::getrandom(bytes.as_mut_slice()).map_err(SecretsError::Random)?;
    Ok(bytes)
}

/// Appends `nonce || ciphertext+tag` to `out`, with `context` as associated data.
pub(crate) fn encrypt_into(
    key: &[u8; 32],
    context: &str,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SecretsError> {
    let nonce = random::<NONCE_LEN>()?;
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let payload = Payload {
        msg: plaintext,
        aad: context.as_bytes(),
    };
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(nonce.as_slice()), payload)
        .map_err(|_| SecretsError::Encrypt)?;
    out.reserve(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(nonce.as_slice());
    out.extend_from_slice(&ciphertext);
    Ok(())
}

/// Decrypts `nonce || ciphertext+tag` (as written by [`encrypt_into`]).
pub(crate) fn decrypt(
    key: &[u8; 32],
    context: &str,
    nonce_and_ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
    if nonce_and_ciphertext.len() < NONCE_LEN + TAG_LEN {
        return Err(SecretsError::Decrypt);
    }
    let (nonce, ciphertext) = nonce_and_ciphertext.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let payload = Payload {
        msg: ciphertext,
        aad: context.as_bytes(),
    };
    cipher
        .decrypt(XNonce::from_slice(nonce), payload)
        .map(Zeroizing::new)
        .map_err(|_| SecretsError::Decrypt)
}

/// Checks the version byte and the minimum length of a sealed secret whose
/// version byte is followed by `header_len` bytes before the nonce, and
/// returns everything after the version byte.
pub(crate) fn strip_version(sealed: &[u8], header_len: usize) -> Result<&[u8], SecretsError> {
    let min = 1 + header_len + NONCE_LEN + TAG_LEN;
    match sealed.split_first() {
        None => Err(SecretsError::Truncated { len: 0, min }),
        Some((&version, _)) if version != VERSION => Err(SecretsError::UnsupportedVersion(version)),
        Some(_) if sealed.len() < min => Err(SecretsError::Truncated {
            len: sealed.len(),
            min,
        }),
        Some((_, rest)) => Ok(rest),
    }
}
