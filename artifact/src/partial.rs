//! The temporary sibling directory a release is unpacked into: created next to
//! the destination (so the final rename stays on one filesystem), renamed to
//! the destination only on success, and removed on every other way out,
//! including an early return or a panic.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::UnpackError;
use crate::extract::create_dir;

/// Distinguishes partial directories made by one process.
static NEXT_PARTIAL: AtomicU64 = AtomicU64::new(0);

/// How many names to try before giving up on finding a free one.
const ATTEMPTS: u32 = 64;

/// A partial release directory; removed on drop unless committed.
#[derive(Debug)]
pub(crate) struct PartialDir {
    path: PathBuf,
    committed: bool,
}

impl PartialDir {
    /// Creates `DEST.partial-PID-N` next to `dest`, after checking that `dest`
    /// does not exist.
    pub(crate) fn create(dest: &Path) -> Result<PartialDir, UnpackError> {
        let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
            return Err(UnpackError::InvalidDestination(dest.to_owned()));
        };
        // `Path` drops a trailing `.`, so `x/.` would look like `x`: refuse it.
        let raw = dest.as_os_str().as_bytes();
        if raw == b"." || raw.ends_with(b"/.") {
            return Err(UnpackError::InvalidDestination(dest.to_owned()));
        }
        ensure_absent(dest)?;
        for _ in 0..ATTEMPTS {
            let mut partial_name = OsString::from(name);
            let n = NEXT_PARTIAL.fetch_add(1, Ordering::Relaxed);
            partial_name.push(format!(".partial-{}-{n}", std::process::id()));
            let path = parent.join(partial_name);
            match create_dir(&path) {
                Ok(()) => {
                    return Ok(PartialDir {
                        path,
                        committed: false,
                    })
                }
                // A leftover of an earlier process with the same pid: next name.
                Err(UnpackError::Io { source, .. })
                    if source.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    // create_dir may have made the directory and failed to chmod it.
                    let _ = fs::remove_dir(&path);
                    return Err(e);
                }
            }
        }
        Err(UnpackError::Io {
            path: dest.to_owned(),
            source: io::Error::new(
                io::ErrorKind::AlreadyExists,
                "no free name for a partial directory",
            ),
        })
    }

    /// The directory to unpack into.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the partial directory to `dest`. `dest` is checked again first
    /// because unpacking takes a while; a race that creates an empty `dest`
    /// between that check and the rename is not detected (rename(2) replaces
    /// an empty directory).
    pub(crate) fn commit(mut self, dest: &Path) -> Result<(), UnpackError> {
        ensure_absent(dest)?;
        fs::rename(&self.path, dest).map_err(|source| UnpackError::Io {
            path: dest.to_owned(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the error being returned matters more. This does
            // not follow symlinks inside the tree.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn ensure_absent(dest: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(dest) {
        Ok(_) => Err(UnpackError::DestinationExists(dest.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(UnpackError::Io {
            path: dest.to_owned(),
            source,
        }),
    }
}
