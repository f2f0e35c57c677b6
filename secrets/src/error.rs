//! The one error type of this crate. Every message says what went wrong and,
//! where the user can fix it, how; no message ever carries key material or
//! plaintext, so errors are safe to log and to send back to the CLI.

use std::io;
use std::path::PathBuf;

/// Why a key could not be loaded or created, or a secret could not be
/// encrypted, decrypted, sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// could not get random bytes from the operating system: {0}
    #[error("could not get random bytes from the operating system: {0}")]
    Random(getrandom::Error),

    /// could not {action} key file {path}: {source}
    #[error("could not {action} key file {}: {source}", path.display())]
    KeyFileIo {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    /// key file {path} is not a regular file
    #[error("key file {} is not a regular file", path.display())]
    KeyFileNotRegular { path: PathBuf },

    /// key file {path} is readable by group or others (mode {mode:o}): run `chmod 600 {path}`
    #[error(
        "key file {} is readable by group or others (mode {mode:03o}): run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },

    /// key file {path} is malformed: expected exactly 64 hex characters (a 32-byte key)
    #[error(
        "key file {} is malformed: expected exactly 64 hex characters (a 32-byte key), optionally followed by a newline",
        path.display()
    )]
    KeyFileMalformed { path: PathBuf },

    /// could not encrypt secret: the plaintext is too long
    #[error("could not encrypt secret: the plaintext is too long")]
    Encrypt,

    /// sealed secret is too short ({len} bytes, at least {min} needed)
    #[error("sealed secret is too short ({len} bytes, at least {min} needed)")]
    Truncated { len: usize, min: usize },

    /// sealed secret has format version {0}, but this build reads only version 1
    #[error("sealed secret has format version {0}, but this build reads only version 1")]
    UnsupportedVersion(u8),

    /// could not decrypt secret: wrong key, wrong context, or the data was altered
    #[error("could not decrypt secret: wrong key, wrong context, or the data was altered")]
    Decrypt,

    /// key agreement gave an all-zero shared secret: the public key is a low-order point
    #[error("key agreement gave an all-zero shared secret: the public key is a low-order point")]
    LowOrderPoint,
}
