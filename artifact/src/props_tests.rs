//! Property tests: `unpack` is a decoder of untrusted bytes, so arbitrary and
//! structurally plausible inputs must never panic, never leave anything behind
//! on refusal and never produce a release with a way out; and whatever
//! `pack_dir` packs must come back exactly.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use tar::EntryType;

use crate::test_archive::{gzip, Crafted, Scene};
use crate::{pack_dir, unpack, Limits};

/// Small limits so that generated archives also reach them.
fn small_limits() -> Limits {
    Limits {
        max_total_bytes: 4096,
        max_entries: 12,
        max_entry_bytes: 2048,
        max_path_bytes: 64,
        max_depth: 4,
    }
}

/// Unpacks and checks the invariants that hold whatever the outcome.
fn check_unpack(archive: &[u8]) {
    let scene = Scene::new();
    match unpack(archive, &scene.dest, &small_limits()) {
        Err(_) => scene.assert_untouched(),
        Ok(_) => {
            assert_eq!(crate::test_archive::names(&scene.parent), ["release"]);
            assert_no_way_out(&scene.dest);
        }
    }
}

/// Every symlink in the release that resolves at all resolves inside it.
fn assert_no_way_out(dest: &Path) {
    let root = fs::canonicalize(dest).unwrap();
    let mut pending = vec![dest.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for item in fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            assert_eq!(
                meta.permissions().mode() & 0o7000,
                0,
                "no setuid, setgid or sticky bit"
            );
            if meta.file_type().is_symlink() {
                if let Ok(resolved) = fs::canonicalize(&path) {
                    assert!(
                        resolved.starts_with(&root),
                        "{} -> {}",
                        path.display(),
                        resolved.display()
                    );
                }
            } else if meta.is_dir() {
                pending.push(path);
            }
        }
    }
}

/// Names built from pieces that exercise the path rules.
fn name() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec!["a", "b", "..", ".", "", "/", "c/"]);
    vec(pieces, 1..6).prop_map(|parts| parts.join("/"))
}

#[derive(Debug, Clone)]
enum Craft {
    File(String, u32, usize),
    Dir(String),
    Symlink(String, String),
    Other(String, u8, String),
}

fn craft() -> impl Strategy<Value = Craft> {
    prop_oneof![
        (name(), any::<u32>(), 0usize..3000).prop_map(|(n, mode, size)| Craft::File(
            n,
            mode & 0o7777,
            size
        )),
        name().prop_map(Craft::Dir),
        (name(), name()).prop_map(|(n, t)| Craft::Symlink(n, t)),
        (name(), any::<u8>(), name()).prop_map(|(n, kind, link)| Craft::Other(n, kind, link)),
    ]
}

fn build(crafts: &[Craft]) -> Vec<u8> {
    let mut archive = Crafted::new();
    for craft in crafts {
        match craft {
            Craft::File(name, mode, size) => archive.file_mode(name, *mode, &vec![b'z'; *size]),
            Craft::Dir(name) => archive.dir(name),
            Craft::Symlink(name, target) => archive.symlink(name, target),
            Craft::Other(name, kind, link) => archive.special(name, EntryType::new(*kind), link),
        };
    }
    archive.finish()
}

/// A relative path of 1 to 3 safe components.
fn safe_path() -> impl Strategy<Value = Vec<String>> {
    vec("[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,7}", 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        check_unpack(&bytes);
    }

    #[test]
    fn arbitrary_gzipped_bytes_never_panic(bytes in vec(any::<u8>(), 0..4096)) {
        check_unpack(&gzip(&bytes));
    }

    #[test]
    fn crafted_archives_are_safe(crafts in vec(craft(), 0..10)) {
        check_unpack(&build(&crafts));
    }

    #[test]
    fn mutated_archives_are_safe(
        crafts in vec(craft(), 1..6),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut tar = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&build(&crafts)[..]), &mut tar).unwrap();
        for (at, byte) in flips {
            let i = at.index(tar.len());
            tar[i] = byte;
        }
        check_unpack(&gzip(&tar));
    }

    #[test]
    fn packed_trees_round_trip(files in vec((safe_path(), vec(any::<u8>(), 0..300), any::<bool>()), 0..12)) {
        let src = tempfile::tempdir().unwrap();
        let mut expected = BTreeMap::new();
        for (parts, contents, executable) in files {
            let path = src.path().join(parts.join("/"));
            // Skip paths that collide with earlier ones (a file where a
            // directory is needed or the other way round).
            if fs::create_dir_all(path.parent().unwrap()).is_err() || path.exists() {
                continue;
            }
            fs::write(&path, &contents).unwrap();
            let mode = if executable { 0o755 } else { 0o644 };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            expected.insert(parts.join("/"), (contents, mode));
        }
        let mut archive = Vec::new();
        let entries = pack_dir(src.path(), &mut archive).unwrap();

        let scene = Scene::new();
        let unpacked = unpack(&archive[..], &scene.dest, &Limits::default()).unwrap();
        prop_assert_eq!(unpacked.files + unpacked.dirs + unpacked.symlinks, entries);
        prop_assert_eq!(unpacked.files, expected.len() as u64);
        for (name, (contents, mode)) in &expected {
            let path = scene.dest.join(name);
            prop_assert_eq!(&fs::read(&path).unwrap(), contents);
            prop_assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, *mode);
        }
    }
}
