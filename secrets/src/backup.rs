//! Encrypted backup parts. A node that makes a part has no cluster key, so
//! it encrypts to the cluster's *backup key*, an X25519 key pair derived
//! from the cluster key: it picks a random content key, seals it to the
//! backup key's public half ([`crate::seal`]), and encrypts the data in
//! frames under the content key. Only a holder of the cluster key opens the
//! content key again; to restore, it seals the content key to the node that
//! restores ([`crate::seal`] again), which then decrypts the frames.
//!
//! A part is
//! `"REEFBAK1" || recipient public key (32) || sealed key length (u16 BE) || sealed key`
//! then frames, each `length (u32 BE) || ciphertext+tag` of at most
//! [`FRAME`] plaintext bytes, under XChaCha20-Poly1305 with the nonce
//! `0 (15) || last (1) || index (u64 BE)` and the part's context as
//! associated data. The last frame says it is last, so a part cut short,
//! with frames reordered, dropped or repeated, does not decrypt.

use std::io::{self, Read, Write};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{cipher, ClusterKey, NodeKey, SecretsError};

/// The format's first bytes.
const MAGIC: &[u8; 8] = b"REEFBAK1";
/// Plaintext bytes per frame.
pub const FRAME: usize = 64 * 1024;
/// Domain separation for the backup key's derivation.
const LABEL: &[u8] = b"reef-backup-key-v1";
/// The largest sealed key a header may hold.
const MAX_SEALED_KEY: usize = 256;

/// Why a part could not be made or opened. No message holds key material.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("it is not a reef backup (it does not start with REEFBAK1)")]
    NotABackup,
    #[error("it was made for another cluster's key (its backup key is {found}, this cluster's is {ours}): a backup opens only in the cluster that made it")]
    OtherCluster { found: String, ours: String },
    #[error("it is corrupted: frame {frame} does not decrypt")]
    Corrupted { frame: u64 },
    #[error("it is cut short after frame {frames}")]
    Truncated { frames: u64 },
    #[error("it is malformed: {0}")]
    Malformed(String),
    #[error("its content key does not open: {0}")]
    Key(SecretsError),
    #[error("reading or writing it failed: {0}")]
    Io(#[from] io::Error),
}

/// The cluster's backup key pair.
pub struct BackupKey(NodeKey);

impl BackupKey {
    /// The public half, which nodes encrypt parts to.
    pub fn public(&self) -> [u8; 32] {
        self.0.public()
    }

    /// Opens the content key of a part whose header is `header`.
    pub fn open(&self, context: &str, header: &Header) -> Result<Zeroizing<[u8; 32]>, BackupError> {
        if header.recipient != self.public() {
            return Err(BackupError::OtherCluster {
                found: short_hex(&header.recipient),
                ours: short_hex(&self.public()),
            });
        }
        let key = self
            .0
            .open(context, &header.sealed_key)
            .map_err(BackupError::Key)?;
        content_key(&key)
    }
}

impl ClusterKey {
    /// The backup key pair, derived from this key.
    pub fn backup_key(&self) -> BackupKey {
        let mut hasher = Sha256::new();
        hasher.update(LABEL);
        hasher.update(self.bytes());
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&hasher.finalize());
        BackupKey(NodeKey::from_seed(&seed))
    }
}

/// A part's header: whose key it was made for, and its content key sealed to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub recipient: [u8; 32],
    pub sealed_key: Vec<u8>,
}

/// Opens a content key that was sealed to this node for a restore.
pub fn open_for_node(
    node: &NodeKey,
    context: &str,
    sealed: &[u8],
) -> Result<Zeroizing<[u8; 32]>, BackupError> {
    let key = node.open(context, sealed).map_err(BackupError::Key)?;
    content_key(&key)
}

fn content_key(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, BackupError> {
    if bytes.len() != 32 {
        return Err(BackupError::Malformed(format!(
            "its content key is {} bytes, not 32",
            bytes.len()
        )));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(bytes);
    Ok(key)
}

fn short_hex(bytes: &[u8]) -> String {
    bytes[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn nonce(index: u64, last: bool) -> XNonce {
    let mut nonce = [0u8; 24];
    nonce[15] = u8::from(last);
    nonce[16..].copy_from_slice(&index.to_be_bytes());
    *XNonce::from_slice(&nonce)
}

/// Encrypts all of `input` into `output` as a part for `recipient` (the
/// cluster's [`BackupKey::public`]), binding `context`. Returns the
/// plaintext bytes read.
pub fn encrypt(
    recipient: &[u8; 32],
    context: &str,
    mut input: impl Read,
    mut output: impl Write,
) -> Result<u64, BackupError> {
    let key = cipher::random::<32>().map_err(BackupError::Key)?;
    let sealed = crate::seal(recipient, context, key.as_slice()).map_err(BackupError::Key)?;
    output.write_all(MAGIC)?;
    output.write_all(recipient)?;
    let len = u16::try_from(sealed.len())
        .map_err(|_| BackupError::Malformed("sealed key too long".into()))?;
    output.write_all(&len.to_be_bytes())?;
    output.write_all(&sealed)?;
    let aead = XChaCha20Poly1305::new(Key::from_slice(key.as_slice()));
    let mut current = Zeroizing::new(vec![0u8; FRAME]);
    let mut filled = fill(&mut input, &mut current)?;
    let mut next = Zeroizing::new(vec![0u8; FRAME]);
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        // A full frame may be the last: look ahead to know.
        let next_filled = if filled == FRAME {
            fill(&mut input, &mut next)?
        } else {
            0
        };
        let last = next_filled == 0;
        let sealed = aead
            .encrypt(
                &nonce(index, last),
                Payload {
                    msg: &current[..filled],
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| BackupError::Key(SecretsError::Encrypt))?;
        output.write_all(&(sealed.len() as u32).to_be_bytes())?;
        output.write_all(&sealed)?;
        total += filled as u64;
        if last {
            break;
        }
        std::mem::swap(&mut current, &mut next);
        filled = next_filled;
        index += 1;
    }
    output.flush()?;
    Ok(total)
}

/// Reads as many bytes as fit in `buf`, stopping early only at the end.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads a part's header, leaving `input` at its first frame.
pub fn read_header(input: &mut impl Read) -> Result<Header, BackupError> {
    let mut magic = [0u8; 8];
    read_exact(input, &mut magic, 0)?;
    if &magic != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let mut recipient = [0u8; 32];
    read_exact(input, &mut recipient, 0)?;
    let mut len = [0u8; 2];
    read_exact(input, &mut len, 0)?;
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 || len > MAX_SEALED_KEY {
        return Err(BackupError::Malformed(format!(
            "its sealed key is {len} bytes"
        )));
    }
    let mut sealed_key = vec![0u8; len];
    read_exact(input, &mut sealed_key, 0)?;
    Ok(Header {
        recipient,
        sealed_key,
    })
}

fn read_exact(input: &mut impl Read, buf: &mut [u8], frames: u64) -> Result<(), BackupError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => BackupError::Truncated { frames },
        _ => BackupError::Io(e),
    })
}

/// Decrypts the frames after the header into `output`, checking every one;
/// returns the plaintext bytes written. Anything after the last frame, a
/// frame out of place, or a missing last frame is refused.
pub fn decrypt(
    key: &[u8; 32],
    context: &str,
    mut input: impl Read,
    mut output: impl Write,
) -> Result<u64, BackupError> {
    let aead = XChaCha20Poly1305::new(Key::from_slice(key));
    let mut index = 0u64;
    let mut total = 0u64;
    let mut frame = Vec::with_capacity(FRAME + cipher::TAG_LEN);
    loop {
        let mut len = [0u8; 4];
        read_exact(&mut input, &mut len, index)?;
        let len = u32::from_be_bytes(len) as usize;
        if !(cipher::TAG_LEN..=FRAME + cipher::TAG_LEN).contains(&len) {
            return Err(BackupError::Corrupted { frame: index });
        }
        frame.resize(len, 0);
        read_exact(&mut input, &mut frame, index)?;
        let payload = |msg| Payload {
            msg,
            aad: context.as_bytes(),
        };
        // Try it as a middle frame first, then as the last one.
        let (plain, last) = match aead.decrypt(&nonce(index, false), payload(&frame[..])) {
            Ok(plain) => (Zeroizing::new(plain), false),
            Err(_) => match aead.decrypt(&nonce(index, true), payload(&frame[..])) {
                Ok(plain) => (Zeroizing::new(plain), true),
                Err(_) => return Err(BackupError::Corrupted { frame: index }),
            },
        };
        output.write_all(&plain)?;
        total += plain.len() as u64;
        if last {
            let mut extra = [0u8; 1];
            return match input.read(&mut extra)? {
                0 => {
                    output.flush()?;
                    Ok(total)
                }
                _ => Err(BackupError::Malformed(
                    "there are bytes after its last frame".into(),
                )),
            };
        }
        index += 1;
    }
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
