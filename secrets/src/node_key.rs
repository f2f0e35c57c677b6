//! Node keys and sealing: each node agent holds an X25519 key pair in its data
//! directory and publishes the public half; the coordinator seals an app's
//! secrets to the public key of each node that runs the app, so a node can
//! open only what was sealed to it. A sealed secret is
//! `version (1) || ephemeral public key (32) || nonce (24) || ciphertext+tag`,
//! encrypted with XChaCha20-Poly1305 under
//! `SHA-256("reef-seal-v1" || ephemeral public || recipient public || DH shared secret)`
//! and with the caller's context as associated data.

use std::fmt;
use std::path::Path;

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

use crate::{cipher, keyfile, SecretsError};

/// Domain separation for the sealing key derivation.
const SEAL_LABEL: &[u8] = b"reef-seal-v1";
/// Length of an X25519 public key.
const PUBLIC_LEN: usize = 32;

/// A node's X25519 key pair, kept in the agent's data directory.
pub struct NodeKey(StaticSecret);

impl NodeKey {
    /// A fresh random key pair.
    pub fn generate() -> Result<Self, SecretsError> {
        cipher::random().map(|bytes| Self::from_bytes(&bytes))
    }

    /// Loads the secret key at `path`, or creates it if there is no file.
    /// Same file rules as [`crate::ClusterKey::load_or_create`].
    pub fn load_or_create(path: &Path) -> Result<Self, SecretsError> {
        keyfile::read_or_create(path, cipher::random).map(|bytes| Self::from_bytes(&bytes))
    }

    /// The key pair whose secret half is `seed` (a key derived elsewhere).
    pub(crate) fn from_seed(seed: &Zeroizing<[u8; 32]>) -> Self {
        Self::from_bytes(seed)
    }

    fn from_bytes(bytes: &Zeroizing<[u8; 32]>) -> Self {
        // `StaticSecret` wipes itself on drop; `bytes` is wiped by its owner.
        Self(StaticSecret::from(**bytes))
    }

    /// The public key to give to whoever seals secrets for this node.
    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }

    /// Opens something sealed to this node's public key with [`seal`].
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let body = cipher::strip_version(sealed, PUBLIC_LEN)?;
        let (ephemeral, rest) = body.split_at(PUBLIC_LEN);
        let mut ephemeral_public = [0u8; PUBLIC_LEN];
        ephemeral_public.copy_from_slice(ephemeral);
        let shared = self.0.diffie_hellman(&PublicKey::from(ephemeral_public));
        let key = seal_key(&ephemeral_public, &self.public(), &shared)?;
        cipher::decrypt(&key, context, rest)
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(..)")
    }
}

/// Seals `plaintext` to `recipient` (a [`NodeKey::public`] key) so that only
/// that node can open it, binding `context` as associated data.
pub fn seal(
    recipient: &[u8; 32],
    context: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, SecretsError> {
    let ephemeral = NodeKey::generate()?;
    let ephemeral_public = ephemeral.public();
    let shared = ephemeral.0.diffie_hellman(&PublicKey::from(*recipient));
    let key = seal_key(&ephemeral_public, recipient, &shared)?;
    let mut sealed =
        Vec::with_capacity(1 + PUBLIC_LEN + cipher::NONCE_LEN + plaintext.len() + cipher::TAG_LEN);
    sealed.push(cipher::VERSION);
    sealed.extend_from_slice(&ephemeral_public);
    cipher::encrypt_into(&key, context, plaintext, &mut sealed)?;
    Ok(sealed)
}

/// The symmetric key for one sealed secret. An all-zero shared secret means
/// one side's public key was a low-order point, which would make the key
/// predictable, so it is refused.
fn seal_key(
    ephemeral_public: &[u8; 32],
    recipient_public: &[u8; 32],
    shared: &SharedSecret,
) -> Result<Zeroizing<[u8; 32]>, SecretsError> {
    if !shared.was_contributory() {
        return Err(SecretsError::LowOrderPoint);
    }
    let mut hasher = Sha256::new();
    hasher.update(SEAL_LABEL);
    hasher.update(ephemeral_public);
    hasher.update(recipient_public);
    hasher.update(shared.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    // Straight into the wiped buffer, leaving no stray copy of the key.
    hasher.finalize_into(GenericArray::from_mut_slice(key.as_mut_slice()));
    Ok(key)
}

#[cfg(test)]
#[path = "node_key_tests.rs"]
mod tests;
