//! Test support: hand-crafted archives, including the malicious ones no
//! honest packer writes (names are copied raw into the header bytes, so the
//! `tar` crate's own path checks cannot clean them up), and a scene of
//! temporary directories that checks nothing was left behind.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::{Builder, EntryType, Header};
use tempfile::TempDir;

use crate::{unpack, Limits, UnpackError};

/// An archive being crafted entry by entry.
pub(crate) struct Crafted {
    builder: Builder<GzEncoder<Vec<u8>>>,
}

impl Crafted {
    pub(crate) fn new() -> Self {
        Crafted {
            builder: Builder::new(GzEncoder::new(Vec::new(), Compression::fast())),
        }
    }

    /// Appends an entry whose header has exactly these name and link bytes
    /// (each at most 100 bytes) and whose data is `data`, `size` bytes long.
    pub(crate) fn raw(
        &mut self,
        name: &[u8],
        kind: EntryType,
        mode: u32,
        link: &[u8],
        size: u64,
        data: impl Read,
    ) -> &mut Self {
        let mut header = Header::new_gnu();
        {
            let old = header.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(0);
        header.set_cksum();
        self.builder.append(&header, data).expect("append");
        self
    }

    pub(crate) fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Regular,
            0o644,
            b"",
            data.len() as u64,
            data,
        )
    }

    pub(crate) fn file_mode(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Regular,
            mode,
            b"",
            data.len() as u64,
            data,
        )
    }

    /// A file of `size` zero bytes, streamed (it may be far larger than memory).
    pub(crate) fn zeros(&mut self, name: &str, size: u64) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Regular,
            0o644,
            b"",
            size,
            io::repeat(0).take(size),
        )
    }

    pub(crate) fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Directory,
            0o755,
            b"",
            0,
            io::empty(),
        )
    }

    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Symlink,
            0o777,
            target.as_bytes(),
            0,
            io::empty(),
        )
    }

    pub(crate) fn special(&mut self, name: &str, kind: EntryType, link: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            kind,
            0o644,
            link.as_bytes(),
            0,
            io::empty(),
        )
    }

    /// A well-formed, empty GNU sparse file (type `S`).
    pub(crate) fn gnu_sparse(&mut self, name: &str) -> &mut Self {
        let mut header = Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(EntryType::GNUSparse);
        header.set_mode(0o644);
        header.set_size(0);
        header.as_gnu_mut().expect("gnu header").set_real_size(0);
        header.set_cksum();
        self.builder.append(&header, io::empty()).expect("append");
        self
    }

    /// A file whose name is set with the `tar` crate's own long-name support.
    pub(crate) fn long_file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        self.builder
            .append_data(&mut header, name, data)
            .expect("append_data");
        self
    }

    /// A pax extended header (type `x`) with these records; it applies to the
    /// next entry.
    pub(crate) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            data.extend(pax_record(key, value));
        }
        self.raw(
            b"PaxHeaders/x",
            EntryType::XHeader,
            0o644,
            b"",
            data.len() as u64,
            &data[..],
        )
    }

    /// A GNU long-name header (type `L`) of `size` zero bytes.
    pub(crate) fn gnu_long_name_zeros(&mut self, size: u64) -> &mut Self {
        self.raw(
            b"././@LongLink",
            EntryType::GNULongName,
            0o644,
            b"",
            size,
            io::repeat(0).take(size),
        )
    }

    /// The gzipped archive, with its end-of-archive blocks.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        self.builder.finish().expect("finish tar");
        let gz = std::mem::replace(
            self.builder.get_mut(),
            GzEncoder::new(Vec::new(), Compression::fast()),
        );
        gz.finish().expect("finish gzip")
    }
}

/// One pax record: `LEN key=value\n`, where LEN counts the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// Gzips `bytes` as they are.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

/// `outer/parent/` with `dest` = `outer/parent/release` not yet created.
pub(crate) struct Scene {
    pub(crate) outer: TempDir,
    pub(crate) parent: PathBuf,
    pub(crate) dest: PathBuf,
}

impl Scene {
    pub(crate) fn new() -> Self {
        let outer = tempfile::tempdir().expect("tempdir");
        let parent = outer.path().join("parent");
        fs::create_dir(&parent).expect("parent");
        let dest = parent.join("release");
        Scene {
            outer,
            parent,
            dest,
        }
    }

    /// After a refusal: `dest` was not created, no partial directory is left,
    /// and nothing appeared next to `parent` either.
    pub(crate) fn assert_untouched(&self) {
        assert!(!self.dest.exists(), "dest must not exist");
        assert_eq!(
            names(&self.parent),
            Vec::<String>::new(),
            "parent must be empty"
        );
        assert_eq!(
            names(self.outer.path()),
            ["parent"],
            "nothing next to parent"
        );
    }
}

/// Unpacks `archive` with `limits`, expecting a refusal; checks nothing was
/// left behind.
pub(crate) fn refused_with(archive: &[u8], limits: &Limits) -> UnpackError {
    let scene = Scene::new();
    let err = unpack(archive, &scene.dest, limits).expect_err("archive must be refused");
    scene.assert_untouched();
    err
}

/// [`refused_with`] the default limits.
pub(crate) fn refused(archive: &[u8]) -> UnpackError {
    refused_with(archive, &Limits::default())
}

/// Sorted names in a directory.
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
