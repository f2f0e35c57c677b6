//! Unpacking an untrusted release archive: the `tar` crate only iterates the
//! entries and reads their data; every decision about what to create, where,
//! and how much, is made here and in `extract`, following the rules in the
//! crate documentation.

use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

use flate2::read::GzDecoder;
use tar::{Archive, EntryType};

use crate::entry_path::{lossy, symlink_target, EntryPath};
use crate::error::UnpackError;
use crate::extract::ReleaseTree;
use crate::limits::{Budget, Limits, Unpacked};
use crate::meter::{Meter, MeteredReader};
use crate::partial::PartialDir;

/// Unpacks a gzipped tar from `reader` into `dest`, which must not exist yet.
///
/// Everything is extracted into a fresh sibling directory (`dest` with a
/// `.partial-PID-N` suffix, in the same parent) that is renamed to `dest` only
/// when the whole archive was accepted; on any error that directory is removed
/// and `dest` is never created. See the crate documentation for what is
/// refused.
pub fn unpack(reader: impl Read, dest: &Path, limits: &Limits) -> Result<Unpacked, UnpackError> {
    let partial = PartialDir::create(dest)?;
    let unpacked = extract_all(reader, partial.path(), limits)?;
    partial.commit(dest)?;
    Ok(unpacked)
}

/// Extracts every entry of the archive under `root`.
fn extract_all(reader: impl Read, root: &Path, limits: &Limits) -> Result<Unpacked, UnpackError> {
    let meter = Rc::new(Meter::default());
    let mut archive = Archive::new(MeteredReader::new(GzDecoder::new(reader), meter.clone()));
    let mut entries = archive.entries().map_err(|e| corrupt(&e))?;
    let tree = ReleaseTree::new(root);
    let mut budget = Budget::new(limits);
    let mut unpacked = Unpacked::default();
    let header_limit = limits.max_header_bytes();
    let mut index = 0u64;
    loop {
        index += 1;
        // While the parser looks for the next entry it may only read headers.
        meter.allow(header_limit);
        let next = entries.next();
        meter.allow_unlimited();
        let mut entry = match next {
            None => break,
            Some(Ok(entry)) => entry,
            Some(Err(_)) if meter.tripped() => {
                return Err(UnpackError::HeaderTooLarge {
                    index,
                    limit: header_limit,
                });
            }
            Some(Err(e)) => return Err(corrupt(&e)),
        };
        let raw_path = entry.path_bytes().into_owned();
        let display = lossy(&raw_path);
        if index > limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                path: display,
                limit: limits.max_entries,
            });
        }
        let path = EntryPath::parse(&raw_path, limits)?;
        let kind = entry.header().entry_type();
        if path.is_root() && kind != EntryType::Directory {
            return Err(UnpackError::UnsafePath {
                path: display,
                reason: "only a directory may name the release root",
            });
        }
        match kind {
            EntryType::Regular => {
                let mode = entry.header().mode().map_err(|e| corrupt(&e))?;
                let executable = mode & 0o111 != 0;
                let bytes = tree.file(&path, &display, executable, &mut entry, &mut budget)?;
                unpacked.files += 1;
                unpacked.bytes += bytes;
            }
            EntryType::Directory => {
                if !path.is_root() {
                    tree.dir(&path, &display)?;
                    unpacked.dirs += 1;
                }
                drain(&mut entry, &mut budget, &display)?;
            }
            EntryType::Symlink => {
                let Some(raw_target) = entry.link_name_bytes().map(|t| t.into_owned()) else {
                    return Err(UnpackError::UnsafeSymlink {
                        path: display,
                        target: String::new(),
                        reason: "symlink has no target",
                    });
                };
                let target = symlink_target(&path, &display, &raw_target, limits)?;
                tree.symlink(&path, &display, &target)?;
                unpacked.symlinks += 1;
                drain(&mut entry, &mut budget, &display)?;
            }
            other => {
                return Err(UnpackError::UnsupportedEntryType {
                    path: display,
                    kind: describe(other),
                });
            }
        }
    }
    Ok(unpacked)
}

/// Reads (and counts against the limits) data that a directory or symlink
/// entry should not have, so the parser's next header read is only padding.
fn drain(entry: &mut impl Read, budget: &mut Budget<'_>, display: &str) -> Result<(), UnpackError> {
    budget.copy(entry, &mut io::sink(), display, Path::new("/dev/null"))?;
    Ok(())
}

fn corrupt(e: &io::Error) -> UnpackError {
    UnpackError::Corrupt(e.to_string())
}

/// An entry type in words, for messages.
fn describe(kind: EntryType) -> String {
    match kind {
        EntryType::Link => "hard link".to_owned(),
        EntryType::Char => "character device".to_owned(),
        EntryType::Block => "block device".to_owned(),
        EntryType::Fifo => "fifo".to_owned(),
        EntryType::Continuous => "contiguous file".to_owned(),
        EntryType::GNUSparse => "GNU sparse file".to_owned(),
        EntryType::XGlobalHeader => "pax global header".to_owned(),
        other => format!("type {:?}", char::from(other.as_byte())),
    }
}

#[cfg(test)]
#[path = "unpack_limits_tests.rs"]
mod limits_tests;
#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
