//! The errors of packing and unpacking. Every refusal of an untrusted archive
//! names the offending entry (quoted and escaped, since it came from the
//! archive) and says why, so an operator can fix the release.

use std::io;
use std::path::PathBuf;

/// Why [`pack_dir`](crate::pack_dir) or [`pack_file`](crate::pack_file) failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// Reading a file or directory, or writing its entry, failed.
    #[error("packing {path}: {source}")]
    Io {
        /// The file or directory being packed.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The path is a socket, fifo, device or other special file.
    #[error("{path} is a {kind}; only regular files, directories and symlinks can be packed")]
    Unsupported {
        /// The special file.
        path: PathBuf,
        /// What it is, in words.
        kind: &'static str,
    },
    /// The entry name given to `pack_file` is not a plain file name.
    #[error("invalid entry name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Finishing the tar or gzip stream failed.
    #[error("writing the archive: {0}")]
    Output(#[source] io::Error),
}

/// Why [`unpack`](crate::unpack()) refused an archive or failed. Whatever the
/// variant, the destination was not created and the partial directory was
/// removed.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The destination already exists; releases are never overwritten.
    #[error("destination {0} already exists")]
    DestinationExists(PathBuf),
    /// The destination has no final component or parent (e.g. `/` or `..`).
    #[error("invalid destination {0}: it must name a new directory inside an existing one")]
    InvalidDestination(PathBuf),
    /// The gzip or tar stream is malformed or truncated.
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    /// The entry path is empty, absolute, contains `..` or a NUL byte, or
    /// names the release root as something other than a directory.
    #[error("refusing entry {path:?}: {reason}")]
    UnsafePath {
        /// The entry path as found in the archive.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The entry path is longer than `Limits::max_path_bytes`.
    #[error("refusing entry {path:?}: path is {len} bytes, the limit is {limit}")]
    PathTooLong {
        /// The entry path as found in the archive.
        path: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The entry path has more components than `Limits::max_depth`.
    #[error("refusing entry {path:?}: path is {depth} levels deep, the limit is {limit}")]
    PathTooDeep {
        /// The entry path as found in the archive.
        path: String,
        /// Its number of components.
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// The entry is a hard link, device, fifo, sparse file or other type that
    /// a release has no use for.
    #[error("refusing entry {path:?}: {kind} entries are not allowed")]
    UnsupportedEntryType {
        /// The entry path as found in the archive.
        path: String,
        /// The entry type, in words.
        kind: String,
    },
    /// The symlink's target is absolute, empty, too long, or leaves the release.
    #[error("refusing symlink {path:?} -> {target:?}: {reason}")]
    UnsafeSymlink {
        /// The symlink's path as found in the archive.
        path: String,
        /// Its target as found in the archive.
        target: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An ancestor of the entry is a symlink, so creating the entry would
    /// write through it.
    #[error("refusing entry {path:?}: its ancestor {ancestor:?} is a symlink")]
    SymlinkAncestor {
        /// The entry path as found in the archive.
        path: String,
        /// The ancestor that is a symlink, relative to the release root.
        ancestor: String,
    },
    /// The entry collides with an earlier one: a duplicate file or symlink, a
    /// path that exists as a symlink, or a file where a directory is needed.
    #[error("refusing entry {path:?}: {reason}")]
    Conflict {
        /// The entry path as found in the archive.
        path: String,
        /// What it collides with.
        reason: &'static str,
    },
    /// The archive has more than `Limits::max_entries` entries.
    #[error("refusing entry {path:?}: the archive has more than {limit} entries")]
    TooManyEntries {
        /// The first entry over the limit.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// One entry's data exceeds `Limits::max_entry_bytes`.
    #[error("refusing entry {path:?}: its data exceeds the limit of {limit} bytes")]
    EntryTooLarge {
        /// The entry path as found in the archive.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// All entries' data together exceed `Limits::max_total_bytes`.
    #[error("refusing entry {path:?}: the archive's data exceeds the limit of {limit} bytes")]
    TotalTooLarge {
        /// The entry during which the total went over.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// The headers before one entry (GNU long names, pax records) are larger
    /// than any real release needs: a decompression bomb aimed at memory.
    #[error("refusing entry number {index}: its headers exceed {limit} bytes")]
    HeaderTooLarge {
        /// The entry's position in the archive, from 1.
        index: u64,
        /// The limit.
        limit: u64,
    },
    /// Creating or writing something on the local filesystem failed.
    #[error("unpacking to {path}: {source}")]
    Io {
        /// The local path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}
