//! Creating one archive entry on disk under the partial release root, without
//! ever following a symlink: ancestors are checked (and created) one level at
//! a time with `symlink_metadata`, files are opened with `create_new`, and
//! nothing that already exists is replaced.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::entry_path::EntryPath;
use crate::error::UnpackError;
use crate::limits::Budget;

/// Mode of every directory and of executable files.
pub(crate) const EXEC_MODE: u32 = 0o755;
/// Mode of other files.
pub(crate) const FILE_MODE: u32 = 0o644;

/// The partial release directory entries are created under.
pub(crate) struct ReleaseTree<'a> {
    root: &'a Path,
}

impl<'a> ReleaseTree<'a> {
    pub(crate) fn new(root: &'a Path) -> Self {
        ReleaseTree { root }
    }

    /// Writes a regular file with `data`, mode 0o755 if `executable` else
    /// 0o644. Returns the number of bytes written.
    pub(crate) fn file(
        &self,
        path: &EntryPath,
        display: &str,
        executable: bool,
        data: &mut impl Read,
        budget: &mut Budget<'_>,
    ) -> Result<u64, UnpackError> {
        let local = self.vacant(path, display)?;
        let mode = if executable { EXEC_MODE } else { FILE_MODE };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&local)
            .map_err(|source| io_error(&local, source))?;
        let written = budget.copy(data, &mut file, display, &local)?;
        // `mode` above is filtered by the umask; set it exactly, on the handle.
        set_mode(&file, mode).map_err(|source| io_error(&local, source))?;
        Ok(written)
    }

    /// Creates a directory, or accepts one that already exists (an earlier
    /// entry or an implicit parent).
    pub(crate) fn dir(&self, path: &EntryPath, display: &str) -> Result<(), UnpackError> {
        self.parents(path, display)?;
        let local = path.under(self.root);
        match fs::symlink_metadata(&local) {
            Ok(meta) if meta.file_type().is_symlink() => {
                Err(conflict(display, "a symlink already exists at this path"))
            }
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(conflict(display, "a file already exists at this path")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(&local),
            Err(source) => Err(io_error(&local, source)),
        }
    }

    /// Creates a symlink to `target`, already validated by
    /// [`symlink_target`](crate::entry_path::symlink_target).
    pub(crate) fn symlink(
        &self,
        path: &EntryPath,
        display: &str,
        target: &[u8],
    ) -> Result<(), UnpackError> {
        let local = self.vacant(path, display)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &local)
            .map_err(|source| io_error(&local, source))
    }

    /// Makes sure the parents of `path` are real directories and that `path`
    /// itself does not exist yet; returns its local path.
    fn vacant(&self, path: &EntryPath, display: &str) -> Result<PathBuf, UnpackError> {
        self.parents(path, display)?;
        let local = path.under(self.root);
        match fs::symlink_metadata(&local) {
            Ok(meta) if meta.file_type().is_symlink() => {
                Err(conflict(display, "a symlink already exists at this path"))
            }
            Ok(meta) if meta.is_dir() => {
                Err(conflict(display, "a directory already exists at this path"))
            }
            Ok(_) => Err(conflict(
                display,
                "duplicate entry: a file already exists at this path",
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(local),
            Err(source) => Err(io_error(&local, source)),
        }
    }

    /// Walks the ancestors of `path` from the root down: each must be a real
    /// directory, and missing ones are created. A symlink anywhere is refused,
    /// so no later step can write through one.
    fn parents(&self, path: &EntryPath, display: &str) -> Result<(), UnpackError> {
        for (local, relative) in path.ancestors_under(self.root) {
            match fs::symlink_metadata(&local) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(UnpackError::SymlinkAncestor {
                        path: display.to_owned(),
                        ancestor: relative,
                    });
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(conflict(display, "an ancestor of this path is a file")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(&local)?,
                Err(source) => return Err(io_error(&local, source)),
            }
        }
        Ok(())
    }
}

/// Creates one directory (never its parents) with mode 0o755.
pub(crate) fn create_dir(local: &Path) -> Result<(), UnpackError> {
    fs::create_dir(local).map_err(|source| io_error(local, source))?;
    // Right after creating it, in a tree only this process writes: the path
    // is still the directory just made, so a path-based chmod is safe.
    fs::set_permissions(local, Permissions::from_mode(EXEC_MODE))
        .map_err(|source| io_error(local, source))
}

fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(mode))
}

fn conflict(display: &str, reason: &'static str) -> UnpackError {
    UnpackError::Conflict {
        path: display.to_owned(),
        reason,
    }
}

fn io_error(local: &Path, source: io::Error) -> UnpackError {
    UnpackError::Io {
        path: local.to_owned(),
        source,
    }
}
