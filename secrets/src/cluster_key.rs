//! The cluster key: one 32-byte symmetric key, kept in a file on the
//! coordinator machines and never in NATS, that encrypts every secret stored
//! in the KV bucket. A stored secret is
//! `version (1) || nonce (24) || XChaCha20-Poly1305 ciphertext+tag`, with a
//! caller-chosen context (e.g. `"app/KEY"`) as associated data so a value
//! cannot be moved to another app or name without failing to decrypt.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::{cipher, keyfile, SecretsError};

/// The 32-byte symmetric key that encrypts secrets at rest.
pub struct ClusterKey(Zeroizing<[u8; 32]>);

impl ClusterKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, SecretsError> {
        cipher::random().map(Self)
    }

    /// Reads the key from `path`: exactly 64 hex characters (either case),
    /// optionally followed by a newline. Refuses a file that group or others
    /// may read.
    pub fn load(path: &Path) -> Result<Self, SecretsError> {
        keyfile::read(path).map(Self)
    }

    /// Loads the key at `path`, or creates it (mode 0600, parent directories
    /// created, written atomically) if there is no file.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretsError> {
        keyfile::read_or_create(path, cipher::random).map(Self)
    }

    /// Encrypts `plaintext` under a random nonce, binding `context`.
    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let mut sealed = vec![cipher::VERSION];
        cipher::encrypt_into(&self.0, context, plaintext, &mut sealed)?;
        Ok(sealed)
    }

    /// The key's bytes, for keys derived from it in this crate.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Decrypts what [`ClusterKey::encrypt`] produced with the same `context`.
    pub fn decrypt(
        &self,
        context: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let body = cipher::strip_version(sealed, 0)?;
        cipher::decrypt(&self.0, context, body)
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

#[cfg(test)]
#[path = "cluster_key_tests.rs"]
mod tests;
