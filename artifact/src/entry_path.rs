//! Validation of the names inside an untrusted archive: entry paths and
//! symlink targets. Pure functions on bytes, no I/O, so every rule can be
//! tested exhaustively; the crate root documents the rules.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::UnpackError;
use crate::limits::Limits;

/// A validated entry path: zero or more normal components (no `.`, `..` or
/// empty ones), relative to the release root. Zero components is the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryPath {
    components: Vec<Vec<u8>>,
}

impl EntryPath {
    /// Validates and normalises an entry path from the archive.
    pub(crate) fn parse(raw: &[u8], limits: &Limits) -> Result<EntryPath, UnpackError> {
        let unsafe_path = |reason| UnpackError::UnsafePath {
            path: lossy(raw),
            reason,
        };
        if raw.is_empty() {
            return Err(unsafe_path("empty path"));
        }
        if raw.contains(&0) {
            return Err(unsafe_path("path contains a NUL byte"));
        }
        if raw.len() > limits.max_path_bytes {
            return Err(UnpackError::PathTooLong {
                path: lossy(raw),
                len: raw.len(),
                limit: limits.max_path_bytes,
            });
        }
        if raw[0] == b'/' {
            return Err(unsafe_path("absolute path"));
        }
        let mut components = Vec::new();
        for part in raw.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(unsafe_path("path contains a `..` component")),
                name => components.push(name.to_vec()),
            }
        }
        if components.len() > limits.max_depth {
            return Err(UnpackError::PathTooDeep {
                path: lossy(raw),
                depth: components.len(),
                limit: limits.max_depth,
            });
        }
        Ok(EntryPath { components })
    }

    /// Whether this is the release root itself (`.` or `./`).
    pub(crate) fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// Number of components.
    pub(crate) fn depth(&self) -> usize {
        self.components.len()
    }

    /// The path under `root`.
    pub(crate) fn under(&self, root: &Path) -> PathBuf {
        let mut path = root.to_path_buf();
        path.extend(self.components.iter().map(|c| OsStr::from_bytes(c)));
        path
    }

    /// The ancestors of this path under `root`, outermost first, excluding
    /// `root` and the path itself, each with its `/`-joined relative name.
    pub(crate) fn ancestors_under(&self, root: &Path) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let mut path = root.to_path_buf();
        let parents = self.components.len().saturating_sub(1);
        for (i, component) in self.components[..parents].iter().enumerate() {
            path.push(OsStr::from_bytes(component));
            out.push((path.clone(), lossy(&self.components[..=i].join(&b'/'))));
        }
        out
    }
}

/// Validates the target of the symlink at `link` (whose path in the archive
/// is `display`) and returns the normalised target to create: zero or more
/// leading `..` followed by normal components, or `.`.
///
/// Every `..` must come before the first normal component, and there may be no
/// more of them than the link's parent directory is deep. The link's parent
/// is a real directory (ancestors are never symlinks), so its `..` chain is
/// known, and a link to an accepted path cannot leave the release whatever
/// other links that path goes through.
pub(crate) fn symlink_target(
    link: &EntryPath,
    display: &str,
    raw: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, UnpackError> {
    let refuse = |reason| UnpackError::UnsafeSymlink {
        path: display.to_owned(),
        target: lossy(raw),
        reason,
    };
    if raw.is_empty() {
        return Err(refuse("empty target"));
    }
    if raw.contains(&0) {
        return Err(refuse("target contains a NUL byte"));
    }
    if raw.len() > limits.max_path_bytes {
        return Err(refuse("target is longer than the path limit"));
    }
    if raw[0] == b'/' {
        return Err(refuse("absolute target"));
    }
    let mut ups = 0usize;
    let mut names: Vec<&[u8]> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if names.is_empty() => ups += 1,
            b".." => {
                return Err(refuse(
                    "`..` after a normal component (it could climb out through another symlink)",
                ))
            }
            name => names.push(name),
        }
    }
    if ups > link.depth().saturating_sub(1) {
        return Err(refuse("target points outside the release"));
    }
    let mut parts: Vec<&[u8]> = vec![b".."; ups];
    parts.extend(names);
    if parts.is_empty() {
        return Ok(b".".to_vec());
    }
    Ok(parts.join(&b'/'))
}

/// Archive bytes as a string for messages; invalid UTF-8 is replaced.
pub(crate) fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

#[cfg(test)]
#[path = "entry_path_tests.rs"]
mod tests;
