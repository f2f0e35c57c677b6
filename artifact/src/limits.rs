//! How much an untrusted archive may make us write: the configurable
//! [`Limits`], the [`Unpacked`] tally returned on success, and the running
//! [`Budget`] that counts bytes as they are written rather than as headers
//! declare them.

use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::UnpackError;

/// Limits for unpacking untrusted archives. The defaults suit releases of a
/// few gigabytes; tests and small nodes may lower them.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most bytes of file data in the whole archive, after decompression.
    pub max_total_bytes: u64,
    /// Most entries (files, directories and symlinks) in the archive.
    pub max_entries: u64,
    /// Most bytes of data in one entry.
    pub max_entry_bytes: u64,
    /// Longest entry path or symlink target, in bytes, as found in the archive.
    pub max_path_bytes: usize,
    /// Most components in an entry path.
    pub max_depth: usize,
}

impl Default for Limits {
    /// 4 GiB in total, 100 000 entries, 2 GiB per entry, 1024-byte paths,
    /// 64 levels deep.
    fn default() -> Self {
        Limits {
            max_total_bytes: 4 << 30,
            max_entries: 100_000,
            max_entry_bytes: 2 << 30,
            max_path_bytes: 1024,
            max_depth: 64,
        }
    }
}

impl Limits {
    /// Most bytes the tar parser may read between two entries: padding, the
    /// headers themselves, a GNU long name and long link name and a pax record
    /// set. Generous for real archives, small enough that a gigabyte of zeros
    /// declared as a long name is refused before it is buffered in memory.
    pub(crate) fn max_header_bytes(&self) -> u64 {
        const FIXED: u64 = 64 * 1024;
        let paths = u64::try_from(self.max_path_bytes).unwrap_or(u64::MAX);
        FIXED.saturating_add(paths.saturating_mul(4))
    }
}

/// What [`unpack`](crate::unpack()) created.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files written.
    pub files: u64,
    /// Directory entries in the archive (parents created implicitly for an
    /// entry without their own entry are not counted; nor is a `./` entry).
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of file data written.
    pub bytes: u64,
}

/// Running count of data bytes against the per-entry and total limits.
pub(crate) struct Budget<'a> {
    limits: &'a Limits,
    total: u64,
}

impl<'a> Budget<'a> {
    pub(crate) fn new(limits: &'a Limits) -> Self {
        Budget { limits, total: 0 }
    }

    /// Copies one entry's data from `data` to `out`, refusing as soon as the
    /// entry or the archive would go over its limit; nothing over the limit
    /// is written. Returns the entry's byte count. `display` names the entry
    /// in errors, `local` is the file written (for write errors).
    pub(crate) fn copy(
        &mut self,
        data: &mut impl Read,
        out: &mut impl Write,
        display: &str,
        local: &Path,
    ) -> Result<u64, UnpackError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => return Ok(written),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(UnpackError::Corrupt(format!("reading {display:?}: {e}"))),
            };
            let n64 = n as u64;
            written = written.saturating_add(n64);
            if written > self.limits.max_entry_bytes {
                return Err(UnpackError::EntryTooLarge {
                    path: display.to_owned(),
                    limit: self.limits.max_entry_bytes,
                });
            }
            if self.total.saturating_add(n64) > self.limits.max_total_bytes {
                return Err(UnpackError::TotalTooLarge {
                    path: display.to_owned(),
                    limit: self.limits.max_total_bytes,
                });
            }
            self.total += n64;
            out.write_all(&buf[..n]).map_err(|source| UnpackError::Io {
                path: local.to_owned(),
                source,
            })?;
        }
    }
}
