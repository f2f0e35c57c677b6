//! Tests for key files: the hex format, the permission check, and atomic,
//! exclusive creation.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn fresh(byte: u8) -> impl FnOnce() -> Result<Zeroizing<[u8; 32]>, SecretsError> {
    move || Ok(Zeroizing::new([byte; 32]))
}

#[test]
fn creates_a_private_file_with_hex_and_a_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/key");
    let key = read_or_create(&path, fresh(0xab)).unwrap();
    assert_eq!(*key, [0xab; 32]);

    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let contents = fs::read_to_string(&path).unwrap();
    assert_eq!(contents, format!("{}\n", "ab".repeat(32)));
}

#[test]
fn leaves_no_temp_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    read_or_create(&path, fresh(1)).unwrap();
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["key"]);
}

#[test]
fn an_existing_file_is_read_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    read_or_create(&path, fresh(1)).unwrap();
    let key = read_or_create(&path, || panic!("must not generate a new key")).unwrap();
    assert_eq!(*key, [1; 32]);
}

#[test]
fn losing_a_creation_race_keeps_the_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    // As if another process created the file between our open and our link.
    let key = read_or_create(&path, || {
        write_with_mode(&path, "cd".repeat(32).as_bytes(), 0o600);
        Ok(Zeroizing::new([1; 32]))
    })
    .unwrap();
    assert_eq!(*key, [0xcd; 32]);
    assert_eq!(read(&path).unwrap().as_slice(), &[0xcd; 32]);
}

#[test]
fn accepts_either_case_and_optional_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let hex = "0123456789abcdefABCDEF".repeat(3);
    let hex = &hex[..64];
    for suffix in ["", "\n", "\r\n"] {
        write_with_mode(&path, format!("{hex}{suffix}").as_bytes(), 0o600);
        let key = read(&path).unwrap();
        assert_eq!(key[..4], [0x01, 0x23, 0x45, 0x67]);
        assert_eq!(key[8..11], [0xab, 0xcd, 0xef]);
        assert_eq!(key[11], 0x01);
    }
}

#[test]
fn refuses_a_file_readable_by_group_or_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    for mode in [0o644, 0o640, 0o604, 0o610, 0o601] {
        write_with_mode(&path, "ab".repeat(32).as_bytes(), mode);
        for result in [read(&path), read_or_create(&path, fresh(1))] {
            let err = result.unwrap_err();
            let message = err.to_string();
            assert!(message.contains("chmod 600"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }
    // Refused, not silently replaced.
    assert_eq!(fs::read(&path).unwrap(), "ab".repeat(32).as_bytes());
    write_with_mode(&path, "ab".repeat(32).as_bytes(), 0o400);
    assert!(read(&path).is_ok());
}

#[test]
fn refuses_malformed_contents_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let valid = "ab".repeat(32);
    let bad = [
        String::new(),
        "ab".repeat(31),
        format!("{valid}ab"),
        format!("{valid}\n\n"),
        format!(" {valid}"),
        format!("{}zz", "ab".repeat(31)),
        format!("{}+f", "ab".repeat(31)),
        "sekrit".repeat(11),
    ];
    for contents in bad {
        write_with_mode(&path, contents.as_bytes(), 0o600);
        let err = read(&path).unwrap_err();
        assert!(
            matches!(err, SecretsError::KeyFileMalformed { .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("sekrit"), "{err}");
        assert!(read_or_create(&path, fresh(1)).is_err());
    }
}

#[test]
fn refuses_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let err = read(dir.path()).unwrap_err();
    assert!(
        matches!(err, SecretsError::KeyFileNotRegular { .. }),
        "{err}"
    );
}

#[test]
fn hex_encoding_round_trips() {
    let bytes: Vec<u8> = (0..32).map(|i| i * 8).collect();
    let mut hex = [0u8; 64];
    encode(&bytes, &mut hex);
    assert_eq!(parse(&hex).unwrap().as_slice(), bytes.as_slice());
}
