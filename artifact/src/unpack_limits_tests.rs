//! Tests for `unpack`'s limits and stream errors: entry counts, sizes,
//! decompression bombs in data and in headers, path length and depth, and
//! corrupt gzip or tar, each refused without leaving anything behind.

use std::fs;

use flate2::read::GzDecoder;

use super::*;
use crate::test_archive::{gzip, refused, refused_with, Crafted, Scene};

#[test]
fn refuses_too_many_entries() {
    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    let archive = Crafted::new()
        .file("a", b"")
        .file("b", b"")
        .file("c", b"")
        .finish();
    let scene = Scene::new();
    assert_eq!(unpack(&archive[..], &scene.dest, &limits).unwrap().files, 3);
    let archive = Crafted::new()
        .file("a", b"")
        .file("b", b"")
        .file("c", b"")
        .file("d", b"")
        .finish();
    let err = refused_with(&archive, &limits);
    assert!(
        matches!(err, UnpackError::TooManyEntries { ref path, limit: 3 } if path == "d"),
        "{err}"
    );
}

#[test]
fn refuses_an_entry_over_its_limit() {
    let limits = Limits {
        max_entry_bytes: 1000,
        ..Limits::default()
    };
    let scene = Scene::new();
    unpack(
        &Crafted::new().zeros("exact", 1000).finish()[..],
        &scene.dest,
        &limits,
    )
    .unwrap();
    let err = refused_with(&Crafted::new().zeros("big", 1001).finish(), &limits);
    assert!(
        matches!(err, UnpackError::EntryTooLarge { ref path, limit: 1000 } if path == "big"),
        "{err}"
    );
}

#[test]
fn refuses_a_decompression_bomb() {
    let limits = Limits {
        max_entry_bytes: 8 << 20,
        max_total_bytes: 16 << 20,
        ..Limits::default()
    };
    let mut crafted = Crafted::new();
    for i in 0..3 {
        crafted.zeros(&format!("zeros-{i}"), 8 << 20);
    }
    let archive = crafted.finish();
    assert!(
        archive.len() < 128 * 1024,
        "24 MiB of zeros compress to {} bytes",
        archive.len()
    );
    let err = refused_with(&archive, &limits);
    assert!(
        matches!(err, UnpackError::TotalTooLarge { ref path, .. } if path == "zeros-2"),
        "{err}"
    );
}

#[test]
fn refuses_a_header_bomb() {
    // 64 MiB of zeros as a GNU long name: the tar crate would buffer all of it
    // (and the entry would then be refused as too long, not as a bomb).
    let archive = Crafted::new()
        .gnu_long_name_zeros(64 << 20)
        .file("x", b"")
        .finish();
    let err = refused(&archive);
    assert!(
        matches!(err, UnpackError::HeaderTooLarge { index: 1, .. }),
        "{err}"
    );
}

#[test]
fn long_names_within_limits_are_fine_and_limits_apply_to_them() {
    let name = format!("{}/{}", "d".repeat(150), "f".repeat(150));
    let archive = Crafted::new().long_file(&name, b"long").finish();
    let scene = Scene::new();
    unpack(&archive[..], &scene.dest, &Limits::default()).unwrap();
    assert_eq!(fs::read(scene.dest.join(&name)).unwrap(), b"long");

    let limits = Limits {
        max_path_bytes: 200,
        ..Limits::default()
    };
    let err = refused_with(&archive, &limits);
    assert!(
        matches!(
            err,
            UnpackError::PathTooLong {
                len: 301,
                limit: 200,
                ..
            }
        ),
        "{err}"
    );
    let deep = "d/".repeat(65) + "f";
    let err = refused(&Crafted::new().long_file(&deep, b"").finish());
    assert!(
        matches!(
            err,
            UnpackError::PathTooDeep {
                depth: 66,
                limit: 64,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn corrupt_streams_are_corrupt() {
    let good = Crafted::new()
        .file("a", &[7u8; 5000])
        .file("b", b"x")
        .finish();
    for bad in [
        b"not gzip at all".to_vec(),
        good[..good.len() / 2].to_vec(),
        gzip(&[0x41; 1024]),          // a tar header with a bad checksum
        gzip(&raw_tar_prefix(&good)), // cut inside the first file's data
    ] {
        let err = refused(&bad);
        assert!(matches!(err, UnpackError::Corrupt(_)), "{err}");
    }
}

/// The decompressed tar of `archive`, cut in the middle of its first entry.
fn raw_tar_prefix(archive: &[u8]) -> Vec<u8> {
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut GzDecoder::new(archive), &mut tar).unwrap();
    tar.truncate(512 + 2000);
    tar
}
