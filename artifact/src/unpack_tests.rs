//! Tests for `unpack` against crafted archives: what honest archives produce,
//! and that every malicious path, type and symlink is refused with the right
//! error, leaving neither the destination nor a partial directory behind.
//! Limits and corrupt streams are in `unpack_limits_tests.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tar::EntryType;

use super::*;
use crate::test_archive::{names, refused, Crafted, Scene};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn honest_archive_with_implicit_parents_and_modes() {
    let archive = Crafted::new()
        .dir("./")
        .raw(
            b"etc/",
            EntryType::Directory,
            0o1777,
            b"",
            0,
            std::io::empty(),
        )
        .dir("bin")
        .file_mode("bin/setuid-tool", 0o4755, b"#!/bin/sh\n")
        .file_mode("bin/private", 0o700, b"x")
        .file_mode("etc/deep/conf", 0o600, b"k=v")
        .special("etc/deep/link", EntryType::Symlink, "../../bin/private")
        .finish();
    let scene = Scene::new();
    let unpacked = unpack(&archive[..], &scene.dest, &Limits::default()).unwrap();
    assert_eq!(
        unpacked,
        Unpacked {
            files: 3,
            dirs: 2,
            symlinks: 1,
            bytes: 14
        }
    );
    let d = &scene.dest;
    assert_eq!(mode(&d.join("bin/setuid-tool")), 0o755, "setuid dropped");
    assert_eq!(mode(&d.join("bin/private")), 0o755);
    assert_eq!(mode(&d.join("etc/deep/conf")), 0o644);
    assert_eq!(mode(&d.join("etc")), 0o755, "sticky dropped");
    assert_eq!(mode(&d.join("etc/deep")), 0o755, "implicit parent");
    assert_eq!(mode(d), 0o755);
    assert_eq!(
        fs::read(d.join("etc/deep/link")).unwrap(),
        b"x",
        "link resolves inside"
    );
    assert_eq!(names(&scene.parent), ["release"], "no partial left");
}

#[test]
fn refuses_parent_absolute_and_escaping_paths() {
    for name in ["../evil", "/etc/evil", "a/../../evil", "./../evil", ".."] {
        let err = refused(
            &Crafted::new()
                .file("ok", b"fine")
                .file(name, b"pwned")
                .finish(),
        );
        assert!(
            matches!(err, UnpackError::UnsafePath { ref path, .. } if path == name),
            "{name}: {err}"
        );
        assert!(
            err.to_string().contains(name),
            "message names the entry: {err}"
        );
    }
    assert!(!Path::new("/etc/evil").exists());
}

#[test]
fn refuses_pax_path_that_escapes() {
    // The header name is harmless; the pax record overrides it.
    let archive = Crafted::new()
        .pax(&[("path", b"../evil")])
        .file("harmless", b"pwned")
        .finish();
    let err = refused(&archive);
    assert!(
        matches!(err, UnpackError::UnsafePath { ref path, .. } if path == "../evil"),
        "{err}"
    );

    let archive = Crafted::new()
        .pax(&[("path", b"a\0b")])
        .file("harmless", b"x")
        .finish();
    assert!(matches!(refused(&archive), UnpackError::UnsafePath { .. }));
}

#[test]
fn refuses_escaping_symlinks() {
    for (name, target) in [
        ("etc", "/etc"),
        ("x", ".."),
        ("a", "../x"),
        ("a/b", "../../x"),
        ("b", "a/a/../.."),
    ] {
        let archive = Crafted::new()
            .symlink("a-dot", ".")
            .symlink(name, target)
            .finish();
        let err = refused(&archive);
        assert!(
            matches!(err, UnpackError::UnsafeSymlink { ref path, .. } if path == name),
            "{name} -> {target}: {err}"
        );
        assert!(err.to_string().contains(target), "{err}");
    }
    let archive = Crafted::new().symlink("a", "").finish();
    assert!(matches!(
        refused(&archive),
        UnpackError::UnsafeSymlink { .. }
    ));
}

#[test]
fn accepts_symlinks_that_stay_inside() {
    let archive = Crafted::new()
        .symlink("a/b", "../c")
        .symlink("a/root", "..")
        .symlink("here", ".")
        .finish();
    let scene = Scene::new();
    let unpacked = unpack(&archive[..], &scene.dest, &Limits::default()).unwrap();
    assert_eq!(unpacked.symlinks, 3);
    assert_eq!(
        fs::read_link(scene.dest.join("a/b")).unwrap(),
        Path::new("../c")
    );
}

#[test]
fn refuses_writing_through_a_symlink() {
    let archive = Crafted::new()
        .dir("sub")
        .symlink("link", "sub")
        .file("link/file", b"through")
        .finish();
    let err = refused(&archive);
    assert!(
        matches!(err, UnpackError::SymlinkAncestor { ref path, ref ancestor } if path == "link/file" && ancestor == "link"),
        "{err}"
    );
    // The same through a directory entry and a deeper path.
    let archive = Crafted::new().symlink("l", ".").dir("l/d").finish();
    assert!(matches!(
        refused(&archive),
        UnpackError::SymlinkAncestor { .. }
    ));
    let archive = Crafted::new()
        .symlink("l", ".")
        .symlink("l/x/y", "z")
        .finish();
    assert!(matches!(
        refused(&archive),
        UnpackError::SymlinkAncestor { .. }
    ));
}

#[test]
fn refuses_replacing_a_symlink_or_a_file() {
    for second in [
        Crafted::new().symlink("x", "y").file("x", b"over").finish(),
        Crafted::new().symlink("x", "y").dir("x").finish(),
        Crafted::new().symlink("x", "y").symlink("x", "z").finish(),
        Crafted::new().file("x", b"1").file("x", b"2").finish(),
        Crafted::new().file("x", b"1").dir("x").finish(),
        Crafted::new().dir("x").file("x", b"1").finish(),
        Crafted::new().file("x", b"1").file("x/y", b"2").finish(),
    ] {
        let err = refused(&second);
        assert!(
            matches!(err, UnpackError::Conflict { ref path, .. } if path.starts_with('x')),
            "{err}"
        );
    }
}

#[test]
fn repeating_a_directory_is_fine() {
    let archive = Crafted::new().file("d/f", b"1").dir("d").dir("d/").finish();
    let scene = Scene::new();
    let unpacked = unpack(&archive[..], &scene.dest, &Limits::default()).unwrap();
    assert_eq!(
        unpacked,
        Unpacked {
            files: 1,
            dirs: 2,
            symlinks: 0,
            bytes: 1
        }
    );
}

#[test]
fn refuses_links_devices_and_other_types() {
    for (kind, words) in [
        (EntryType::Link, "hard link"),
        (EntryType::Fifo, "fifo"),
        (EntryType::Char, "character device"),
        (EntryType::Block, "block device"),
        (EntryType::Continuous, "contiguous file"),
        (EntryType::XGlobalHeader, "pax global header"),
        (EntryType::new(b'Z'), "type 'Z'"),
    ] {
        let archive = Crafted::new()
            .file("target", b"x")
            .special("odd", kind, "target")
            .finish();
        let err = refused(&archive);
        assert!(
            matches!(err, UnpackError::UnsupportedEntryType { ref path, ref kind } if path == "odd" && kind == words),
            "{err}"
        );
    }
}

#[test]
fn refuses_sparse_files() {
    let err = refused(&Crafted::new().gnu_sparse("holes").finish());
    assert!(
        matches!(err, UnpackError::UnsupportedEntryType { ref path, ref kind } if path == "holes" && kind == "GNU sparse file"),
        "{err}"
    );
    // A sparse header the tar crate cannot parse is corrupt, and refused too.
    let err = refused(
        &Crafted::new()
            .special("holes", EntryType::GNUSparse, "")
            .finish(),
    );
    assert!(matches!(err, UnpackError::Corrupt(_)), "{err}");
}

#[test]
fn a_file_may_not_name_the_root() {
    let err = refused(&Crafted::new().file(".", b"x").finish());
    assert!(matches!(err, UnpackError::UnsafePath { .. }), "{err}");
}

#[test]
fn an_empty_archive_makes_an_empty_release() {
    let scene = Scene::new();
    let unpacked = unpack(
        &Crafted::new().finish()[..],
        &scene.dest,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(unpacked, Unpacked::default());
    assert!(names(&scene.dest).is_empty());
}

#[test]
fn refuses_an_existing_or_invalid_destination() {
    let archive = Crafted::new().file("a", b"x").finish();
    let scene = Scene::new();
    fs::create_dir(&scene.dest).unwrap();
    fs::write(scene.dest.join("keep"), b"old").unwrap();
    let err = unpack(&archive[..], &scene.dest, &Limits::default()).unwrap_err();
    assert!(matches!(err, UnpackError::DestinationExists(_)), "{err}");
    assert_eq!(names(&scene.dest), ["keep"]);
    assert_eq!(names(&scene.parent), ["release"]);

    for dest in [
        Path::new("/"),
        &scene.parent.join(".."),
        &scene.parent.join("x/."),
    ] {
        let err = unpack(&archive[..], dest, &Limits::default()).unwrap_err();
        assert!(
            matches!(err, UnpackError::InvalidDestination(_)),
            "{}: {err}",
            dest.display()
        );
    }
}
