//! Writing the cluster directory's files: atomically (a temporary file in
//! the same directory, then renamed into place), private ones 0600.

use crate::TrustError;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Who may read a file.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Keys, seeds and credentials: the owner only.
    Private,
    /// Public keys, JWTs and certificates.
    Public,
}

/// Writes `bytes` to `path`, replacing it whole or not at all.
pub fn write(path: &Path, bytes: &[u8], mode: Mode) -> Result<(), TrustError> {
    let dir = path.parent().ok_or_else(|| TrustError::Dir {
        path: path.to_path_buf(),
        reason: "has no parent directory".into(),
    })?;
    std::fs::create_dir_all(dir).map_err(TrustError::io(dir))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let bits = match mode {
        Mode::Private => 0o600,
        Mode::Public => 0o644,
    };
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(bits)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(TrustError::io(path))
}

/// Writes a new private file at `path` whole, unless one is there already
/// (then nothing changes and that is no error): the file appears under its
/// name only once complete, and only the first of several writers wins.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), TrustError> {
    let dir = path.parent().ok_or_else(|| TrustError::Dir {
        path: path.to_path_buf(),
        reason: "has no parent directory".into(),
    })?;
    let tmp = dir.join(format!(
        ".{}.{}.new",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    write(&tmp, bytes, Mode::Private)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(TrustError::io(path)(e)),
    }
}

/// Reads a text file of the cluster directory, at most `max` bytes.
pub fn read(path: &Path, max: u64) -> Result<String, TrustError> {
    let meta = std::fs::metadata(path).map_err(TrustError::io(path))?;
    if meta.len() > max {
        return Err(TrustError::Dir {
            path: path.to_path_buf(),
            reason: format!("larger than {max} bytes"),
        });
    }
    std::fs::read_to_string(path).map_err(TrustError::io(path))
}

/// Reads a private file, refusing one that group or others may read.
pub fn read_private(path: &Path, max: u64) -> Result<zeroize::Zeroizing<String>, TrustError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(TrustError::io(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(TrustError::Dir {
            path: path.to_path_buf(),
            reason: format!(
                "may be read by others (mode {:o}); it holds a secret: chmod 600 it",
                meta.permissions().mode() & 0o777
            ),
        });
    }
    read(path, max).map(zeroize::Zeroizing::new)
}
