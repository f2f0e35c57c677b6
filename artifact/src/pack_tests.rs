//! Tests for packing: round trips through `unpack`, determinism, the headers
//! written, and refusals.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, SystemTime};

use flate2::read::GzDecoder;

use super::*;
use crate::test_archive::Scene;
use crate::{sha256_hex, unpack, Limits, Unpacked};

fn write(root: &Path, name: &str, contents: &[u8], mode: u32) {
    let path = root.join(name);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The release used by the round-trip tests, created in the order given so
/// two copies can differ in creation order and mtimes.
fn build_release(root: &Path, reverse: bool) {
    let mut steps: Vec<usize> = (0..6).collect();
    if reverse {
        steps.reverse();
    }
    for step in steps {
        match step {
            0 => write(root, "bin/tool", b"#!/bin/sh\necho hi\n", 0o750),
            1 => write(root, "etc/app/config.toml", b"port = 80\n", 0o600),
            2 => write(root, "empty", b"", 0o644),
            3 => fs::create_dir_all(root.join("var/empty-dir")).unwrap(),
            4 => {
                fs::create_dir_all(root.join("etc")).unwrap();
                symlink("app/config.toml", root.join("etc/current")).unwrap();
            }
            _ => symlink("bin", root.join("sbin")).unwrap(),
        }
    }
}

/// `path kind mode contents-or-target` for everything under `root`, sorted.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for item in fs::read_dir(&dir).unwrap() {
            let path = item.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                out.push(format!(
                    "{rel} symlink -> {}",
                    fs::read_link(&path).unwrap().display()
                ));
            } else if meta.is_dir() {
                out.push(format!("{rel} dir {mode:o}"));
                pending.push(path);
            } else {
                let contents = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
                out.push(format!("{rel} file {mode:o} {contents:?}"));
            }
        }
    }
    out.sort();
    out
}

fn pack_to_vec(dir: &Path) -> (u64, Vec<u8>) {
    let mut archive = Vec::new();
    let count = pack_dir(dir, &mut archive).unwrap();
    (count, archive)
}

#[test]
fn round_trip() {
    let src = tempfile::tempdir().unwrap();
    build_release(src.path(), false);
    let (count, archive) = pack_to_vec(src.path());
    assert_eq!(count, 10);

    let scene = Scene::new();
    let unpacked = unpack(&archive[..], &scene.dest, &Limits::default()).unwrap();
    assert_eq!(
        unpacked,
        Unpacked {
            files: 3,
            dirs: 5,
            symlinks: 2,
            bytes: 28
        }
    );
    assert_eq!(
        listing(&scene.dest),
        [
            "bin dir 755",
            "bin/tool file 755 \"#!/bin/sh\\necho hi\\n\"",
            "empty file 644 \"\"",
            "etc dir 755",
            "etc/app dir 755",
            "etc/app/config.toml file 644 \"port = 80\\n\"",
            "etc/current symlink -> app/config.toml",
            "sbin symlink -> bin",
            "var dir 755",
            "var/empty-dir dir 755",
        ]
    );
    assert_eq!(
        fs::read(scene.dest.join("sbin/tool")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
}

#[test]
fn packing_is_deterministic() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    build_release(first.path(), false);
    build_release(second.path(), true);
    // Different mtimes and permissions that pack to the same mode.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(second.path().join("empty"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    fs::set_permissions(
        second.path().join("bin/tool"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::set_permissions(
        second.path().join("etc/app"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();

    let (_, a) = pack_to_vec(first.path());
    let (_, a_again) = pack_to_vec(first.path());
    let (_, b) = pack_to_vec(second.path());
    assert_eq!(a, a_again);
    assert_eq!(a, b, "same release, same bytes");
    assert_eq!(sha256_hex(&a[..]).unwrap(), sha256_hex(&b[..]).unwrap());

    // And a real change changes the digest.
    write(second.path(), "empty", b"not any more", 0o644);
    let (_, c) = pack_to_vec(second.path());
    assert_ne!(sha256_hex(&a[..]).unwrap(), sha256_hex(&c[..]).unwrap());
}

#[test]
fn headers_are_normalised_and_sorted() {
    let src = tempfile::tempdir().unwrap();
    build_release(src.path(), true);
    let (_, archive) = pack_to_vec(src.path());
    let mut tar = tar::Archive::new(GzDecoder::new(&archive[..]));
    let mut paths = Vec::new();
    for entry in tar.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        assert_eq!(header.groupname_bytes(), Some(&b""[..]));
        paths.push(entry.path_bytes().into_owned());
    }
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(paths.first().map(Vec::as_slice), Some(&b"bin"[..]));
}

#[test]
fn long_names_and_targets_round_trip() {
    let src = tempfile::tempdir().unwrap();
    let dir = "d".repeat(120);
    let name = format!("{dir}/{}", "f".repeat(120));
    write(src.path(), &name, b"deep", 0o644);
    let target = format!("{dir}/{}", "f".repeat(120));
    symlink(&target, src.path().join("l".repeat(110))).unwrap();
    let (count, archive) = pack_to_vec(src.path());
    assert_eq!(count, 3);
    let scene = Scene::new();
    unpack(&archive[..], &scene.dest, &Limits::default()).unwrap();
    assert_eq!(fs::read(scene.dest.join(&name)).unwrap(), b"deep");
    assert_eq!(fs::read(scene.dest.join("l".repeat(110))).unwrap(), b"deep");
}

#[test]
fn empty_directory_packs_to_an_empty_release() {
    let src = tempfile::tempdir().unwrap();
    let (count, archive) = pack_to_vec(src.path());
    assert_eq!(count, 0);
    let scene = Scene::new();
    assert_eq!(
        unpack(&archive[..], &scene.dest, &Limits::default()).unwrap(),
        Unpacked::default()
    );
}

#[test]
fn special_files_are_refused_by_path() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "ok", b"x", 0o644);
    fs::create_dir(src.path().join("run")).unwrap();
    let socket = src.path().join("run/agent.sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let err = pack_dir(src.path(), Vec::new()).unwrap_err();
    assert!(
        matches!(err, PackError::Unsupported { ref path, kind: "socket" } if *path == socket),
        "{err}"
    );
    assert!(err.to_string().contains("agent.sock"), "{err}");
}

#[test]
fn missing_directory_is_an_io_error() {
    let src = tempfile::tempdir().unwrap();
    let missing = src.path().join("nope");
    let err = pack_dir(&missing, Vec::new()).unwrap_err();
    assert!(
        matches!(err, PackError::Io { ref path, .. } if *path == missing),
        "{err}"
    );
}

#[test]
fn pack_file_round_trip() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "build/app-linux", b"\x7fELF binary", 0o644);
    let mut archive = Vec::new();
    assert_eq!(
        pack_file(&src.path().join("build/app-linux"), "app", &mut archive).unwrap(),
        1
    );
    let scene = Scene::new();
    let unpacked = unpack(&archive[..], &scene.dest, &Limits::default()).unwrap();
    assert_eq!(
        unpacked,
        Unpacked {
            files: 1,
            dirs: 0,
            symlinks: 0,
            bytes: 11
        }
    );
    assert_eq!(listing(&scene.dest), ["app file 755 \"\\u{7f}ELF binary\""]);

    // Through a symlink to the file, the same bytes.
    symlink("build/app-linux", src.path().join("current")).unwrap();
    let mut again = Vec::new();
    pack_file(&src.path().join("current"), "app", &mut again).unwrap();
    assert_eq!(archive, again);
}

#[test]
fn pack_file_refuses_bad_names_and_non_files() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "f", b"x", 0o644);
    for name in ["", ".", "..", "a/b", "/abs", "nul\0"] {
        let err = pack_file(&src.path().join("f"), name, Vec::new()).unwrap_err();
        assert!(
            matches!(err, PackError::InvalidName { .. }),
            "{name:?}: {err}"
        );
    }
    let err = pack_file(src.path(), "dir", Vec::new()).unwrap_err();
    assert!(matches!(err, PackError::Io { .. }), "{err}");
}
