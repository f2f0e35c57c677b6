//! Packing a release: a directory tree or a single binary into a gzipped tar
//! whose bytes depend only on the names, contents, kinds, execute bits and
//! symlink targets of what is packed, so that the same release always has the
//! same digest.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::{Builder, EntryType, Header};

use crate::error::PackError;

/// Mode of directories and executable files in the archive.
const EXEC_MODE: u32 = 0o755;
/// Mode of other files.
const FILE_MODE: u32 = 0o644;
/// Mode of symlinks (ignored on unpacking; this is what GNU tar writes).
const SYMLINK_MODE: u32 = 0o777;

/// Packs every regular file, directory and symlink under `dir` (recursively)
/// into a gzipped tar written to `out`.
///
/// Deterministic: entries sorted by path, mtime 0, uid/gid 0, empty user and
/// group names, mode 0o755 for directories and for files with any execute
/// bit, else 0o644. Symlinks are stored as symlinks with their target as-is
/// (only `.` components and repeated slashes dropped); they are not followed.
/// `dir` itself is not an entry. Anything else (sockets, fifos, devices) is an
/// error naming the path. Returns the number of entries written.
pub fn pack_dir(dir: &Path, out: impl Write) -> Result<u64, PackError> {
    let sources = walk(dir)?;
    let mut builder = Builder::new(GzEncoder::new(out, Compression::default()));
    for source in &sources {
        append(&mut builder, source).map_err(|e| io_error(&source.local, e))?;
    }
    finish(builder)?;
    Ok(sources.len() as u64)
}

/// Packs a single file as the archive's only entry, named `name` (a plain
/// file name: not empty, `.` or `..`, without `/` or NUL), with mode 0o755.
/// `file` may be a symlink to a regular file. Returns the number of entries
/// written (1).
pub fn pack_file(file: &Path, name: &str, out: impl Write) -> Result<u64, PackError> {
    let invalid = |reason| PackError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    match name {
        "" => return Err(invalid("empty name")),
        "." | ".." => return Err(invalid("not a file name")),
        _ if name.contains('/') => return Err(invalid("contains '/'")),
        _ if name.contains('\0') => return Err(invalid("contains a NUL byte")),
        _ => {}
    }
    let source = Source {
        local: file.to_owned(),
        name: PathBuf::from(name),
        kind: Kind::File,
    };
    let mut builder = Builder::new(GzEncoder::new(out, Compression::default()));
    append_file(&mut builder, &source, Some(EXEC_MODE)).map_err(|e| io_error(file, e))?;
    finish(builder)?;
    Ok(1)
}

/// One thing to pack.
struct Source {
    /// Where it is on disk.
    local: PathBuf,
    /// Its path inside the archive.
    name: PathBuf,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

/// Lists everything under `dir`, sorted by archive path bytes (so a directory
/// comes before its contents). Iterative, so deep trees cannot overflow the
/// stack.
fn walk(dir: &Path) -> Result<Vec<Source>, PackError> {
    let mut sources = Vec::new();
    let mut pending = vec![(dir.to_owned(), PathBuf::new())];
    while let Some((local_dir, name_dir)) = pending.pop() {
        let listing = fs::read_dir(&local_dir).map_err(|e| io_error(&local_dir, e))?;
        for item in listing {
            let item = item.map_err(|e| io_error(&local_dir, e))?;
            let local = item.path();
            let name = name_dir.join(item.file_name());
            // `DirEntry::file_type` does not follow symlinks.
            let file_type = item.file_type().map_err(|e| io_error(&local, e))?;
            let kind = if file_type.is_dir() {
                pending.push((local.clone(), name.clone()));
                Kind::Dir
            } else if file_type.is_file() {
                Kind::File
            } else if file_type.is_symlink() {
                Kind::Symlink
            } else {
                return Err(PackError::Unsupported {
                    path: local,
                    kind: special_kind(&file_type),
                });
            };
            sources.push(Source { local, name, kind });
        }
    }
    sources.sort_by(|a, b| {
        a.name
            .as_os_str()
            .as_bytes()
            .cmp(b.name.as_os_str().as_bytes())
    });
    Ok(sources)
}

fn special_kind(file_type: &fs::FileType) -> &'static str {
    if file_type.is_socket() {
        "socket"
    } else if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

fn append<W: Write>(builder: &mut Builder<W>, source: &Source) -> io::Result<()> {
    match source.kind {
        Kind::Dir => {
            let mut header = header(EntryType::Directory, EXEC_MODE, 0);
            builder.append_data(&mut header, &source.name, io::empty())
        }
        Kind::Symlink => {
            let target = fs::read_link(&source.local)?;
            let mut header = header(EntryType::Symlink, SYMLINK_MODE, 0);
            builder.append_link(&mut header, &source.name, target)
        }
        Kind::File => append_file(builder, source, None),
    }
}

/// Appends a regular file; `mode` overrides the one derived from its
/// execute bits.
fn append_file<W: Write>(
    builder: &mut Builder<W>,
    source: &Source,
    mode: Option<u32>,
) -> io::Result<()> {
    let file = File::open(&source.local)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let executable = meta.permissions().mode() & 0o111 != 0;
    let mode = mode.unwrap_or(if executable { EXEC_MODE } else { FILE_MODE });
    let mut header = header(EntryType::Regular, mode, meta.len());
    builder.append_data(
        &mut header,
        &source.name,
        ExactReader {
            file,
            remaining: meta.len(),
        },
    )
}

/// A header with everything that could vary between machines fixed.
fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

fn finish<W: Write>(builder: Builder<GzEncoder<W>>) -> Result<(), PackError> {
    let gzip = builder.into_inner().map_err(PackError::Output)?;
    gzip.finish().map_err(PackError::Output)?;
    Ok(())
}

/// Reads exactly the size that went into the header: the archive would be
/// corrupt if a file shrank or grew while it was being packed.
struct ExactReader {
    file: File,
    remaining: u64,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.file.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other("file grew while being packed")),
            };
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being packed",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

fn io_error(path: &Path, source: io::Error) -> PackError {
    PackError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
