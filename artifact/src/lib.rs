//! Release artifacts: how `reef deploy` turns a directory (or one binary) into
//! a gzipped tarball with a sha256 digest, and how every node agent turns that
//! tarball, which it received from another cluster member, back into a release
//! directory without trusting a single byte of it.
//!
//! - [`digest`]: [`sha256_hex`] names an artifact, [`is_valid_digest`] checks
//!   a name received from elsewhere.
//! - [`pack`]: [`pack_dir`] and [`pack_file`] write deterministic archives.
//! - [`mod@unpack`]: [`unpack()`] extracts an untrusted archive within
//!   [`Limits`], all or nothing, and reports what it made as [`Unpacked`].
//! - [`error`]: [`PackError`] and [`UnpackError`].
//!
//! Internals: `entry_path` (validation of paths and symlink targets, pure),
//! `extract` (creating one entry on disk), `limits` (byte and entry budgets),
//! `meter` (bounding what the tar parser reads for headers), `partial` (the
//! temporary sibling directory that becomes the release on success).
//!
//! # Archive format
//!
//! A gzip stream holding one tar archive with GNU headers. [`pack_dir`] writes
//! every regular file, directory and symlink under the directory, sorted by
//! path bytes, with mtime 0, uid/gid 0, empty user and group names, and mode
//! 0o755 for directories and executable files, 0o644 for other files (0o777
//! for symlinks, whose mode means nothing). Packing the same tree twice gives
//! byte-identical archives and therefore the same digest.
//!
//! # Rules for unpacking untrusted archives
//!
//! [`unpack()`] extracts into a fresh sibling directory `DEST.partial-PID-N` and
//! renames it to `DEST` only after the whole archive was accepted; on any
//! refusal or error the partial directory is removed and `DEST` is never
//! created. It refuses, naming the entry and the reason:
//!
//! - **paths** that are empty, contain a NUL byte, are absolute, contain a
//!   `..` component, are longer than [`Limits::max_path_bytes`] or have more
//!   than [`Limits::max_depth`] components. `.` components, a leading `./` and
//!   repeated or trailing slashes are normalised away. An entry that names the
//!   release root itself (`./`) is accepted as a no-op if it is a directory.
//! - **entry types** other than regular files, directories and symbolic links:
//!   hard links, character and block devices, fifos, GNU sparse files, pax
//!   global headers and unknown types. GNU long names and pax `path`/`linkpath`
//!   records are honoured (the `tar` crate resolves them).
//! - **symlink targets** that are empty, absolute, contain a NUL byte, are
//!   longer than [`Limits::max_path_bytes`], climb (`..`) above the release
//!   root when resolved from the link's own directory, or use `..` after a
//!   normal component. The last rule is stricter than lexical resolution on
//!   purpose: with `a -> .`, the target `a/a/../..` resolves lexically to the
//!   root, but the kernel resolves it to the root's parent. When every `..`
//!   comes first it is applied to the link's real parent directory, whose
//!   depth is known, so no chain of accepted links can leave the release.
//! - **writes through symlinks**: an entry whose ancestor (inside the release)
//!   is a symlink, or whose own path already exists as a symlink.
//! - **conflicts**: a second entry for a path that already exists as a file or
//!   symlink (duplicates are refused, not replaced, because an archive that
//!   lists a file twice is ambiguous), a directory where a file exists, or an
//!   entry below a file. Repeating a directory entry is fine.
//! - **sizes**: more than [`Limits::max_entries`] entries, a file whose data
//!   (counted as written, not as declared) exceeds [`Limits::max_entry_bytes`],
//!   all data together exceeding [`Limits::max_total_bytes`], or headers (GNU
//!   long names, pax records) so large that no real release has them. This is
//!   what stops decompression bombs.
//! - **corrupt** gzip or tar data, reported as [`UnpackError::Corrupt`].
//!
//! Files are written with `create_new` (`O_CREAT | O_EXCL`, which also refuses
//! to follow a symlink) and get mode 0o755 if the header has any execute bit,
//! else 0o644; directories get 0o755. Setuid, setgid and sticky bits, owners
//! and mtimes from the archive are ignored. The archive's integrity is the
//! digest's job: the gzip checksum is not required to be reached.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod digest;
mod entry_path;
pub mod error;
mod extract;
mod limits;
mod meter;
pub mod pack;
mod partial;
pub mod unpack;

#[cfg(test)]
#[path = "props_tests.rs"]
mod props_tests;
#[cfg(test)]
mod test_archive;

pub use digest::{is_valid_digest, sha256_hex};
pub use error::{PackError, UnpackError};
pub use limits::{Limits, Unpacked};
pub use pack::{pack_dir, pack_file};
pub use unpack::unpack;
