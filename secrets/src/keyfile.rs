//! Key files, shared by the cluster key and node keys: 32 bytes as 64 hex
//! characters and a newline, in a file only its owner may read. A missing file
//! is created atomically (temp file in the same directory, then linked into
//! place) so a crash never leaves a half-written key, and two processes racing
//! to create the same key both end up with the one that landed first.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::cipher;
use crate::SecretsError;

/// Hex characters in a key file, not counting the trailing newline.
const HEX_LEN: usize = 64;
/// The most bytes a well-formed key file can hold (hex, then `\r\n`).
const MAX_FILE_LEN: usize = HEX_LEN + 2;

/// Reads the key at `path`, refusing a file that group or others may read.
pub(crate) fn read(path: &Path) -> Result<Zeroizing<[u8; 32]>, SecretsError> {
    let file = File::open(path).map_err(io_error("open", path))?;
    read_open(path, file)
}

/// Reads the key at `path`, or writes `fresh()` there if there is no file.
pub(crate) fn read_or_create(
    path: &Path,
    fresh: impl FnOnce() -> Result<Zeroizing<[u8; 32]>, SecretsError>,
) -> Result<Zeroizing<[u8; 32]>, SecretsError> {
    match File::open(path) {
        Ok(file) => return read_open(path, file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("open", path)(e)),
    }
    let key = fresh()?;
    if create(path, &key)? {
        Ok(key)
    } else {
        // Another process created the file first: use its key, not ours.
        read(path)
    }
}

/// Checks the permissions of an opened key file (on the handle, so the file
/// checked is the file read) and parses it.
fn read_open(path: &Path, mut file: File) -> Result<Zeroizing<[u8; 32]>, SecretsError> {
    let metadata = file.metadata().map_err(io_error("inspect", path))?;
    if !metadata.is_file() {
        return Err(SecretsError::KeyFileNotRegular {
            path: path.to_path_buf(),
        });
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let malformed = || SecretsError::KeyFileMalformed {
        path: path.to_path_buf(),
    };
    // A fixed buffer, so no reallocation leaves copies of the key behind; one
    // spare byte tells an over-long file from a full one.
    let mut buf = Zeroizing::new([0u8; MAX_FILE_LEN + 1]);
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error("read", path)(e)),
        }
    }
    parse(&buf[..len]).ok_or_else(malformed)
}

/// Parses 64 hex characters with an optional trailing `\n` or `\r\n`.
fn parse(contents: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let hex = match contents.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => contents,
    };
    if hex.len() != HEX_LEN {
        return None;
    }
    let mut key = Zeroizing::new([0u8; 32]);
    for (byte, pair) in key.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(key)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex of `bytes` into `out`, which must be twice as long.
fn encode(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Writes `key` to `path` unless a file is already there. Returns whether
/// this call created the file.
fn create(path: &Path, key: &[u8; 32]) -> Result<bool, SecretsError> {
    let file_name = path.file_name().ok_or_else(|| {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name");
        io_error("create", path)(e)
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(io_error("create the directory of", path))?;

    let mut suffix = [0u8; 16];
    encode(cipher::random::<8>()?.as_slice(), &mut suffix);
    let temp_name = format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        String::from_utf8_lossy(&suffix)
    );
    let temp = dir.join(temp_name);
    let created = write_and_link(&temp, path, key);
    // Gone already after a rename; still there after a link or a failure.
    let _ = fs::remove_file(&temp);
    let created = created?;
    if created {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("sync the directory of", path))?;
    }
    Ok(created)
}

fn write_and_link(temp: &Path, path: &Path, key: &[u8; 32]) -> Result<bool, SecretsError> {
    let mut contents = Zeroizing::new([0u8; HEX_LEN + 1]);
    encode(key, &mut contents[..HEX_LEN]);
    contents[HEX_LEN] = b'\n';

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(io_error("create", temp))?;
    file.write_all(contents.as_slice())
        .map_err(io_error("write", temp))?;
    file.sync_all().map_err(io_error("sync", temp))?;
    drop(file);

    // A hard link, unlike a rename, never replaces a file that appeared
    // meanwhile.
    match fs::hard_link(temp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // Some file systems have no hard links; a rename is still atomic.
        Err(_) => fs::rename(temp, path)
            .map(|()| true)
            .map_err(io_error("move into place", path)),
    }
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SecretsError + 'a {
    move |source| SecretsError::KeyFileIo {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
#[path = "keyfile_tests.rs"]
mod tests;
