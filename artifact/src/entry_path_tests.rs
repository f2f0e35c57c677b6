//! Tables of entry paths and symlink targets, accepted and refused.

use std::path::Path;

use super::*;

fn parse(raw: &str) -> Result<EntryPath, UnpackError> {
    EntryPath::parse(raw.as_bytes(), &Limits::default())
}

fn components(raw: &str) -> Vec<String> {
    let path = parse(raw).unwrap();
    path.components.iter().map(|c| lossy(c)).collect()
}

#[test]
fn normalises_dots_and_slashes() {
    assert_eq!(components("a"), ["a"]);
    assert_eq!(components("./a/b"), ["a", "b"]);
    assert_eq!(components("a//./b/"), ["a", "b"]);
    assert_eq!(components("a/.../b"), ["a", "...", "b"]);
    assert_eq!(components("..a/b.."), ["..a", "b.."]);
    assert!(parse("./").unwrap().is_root());
    assert!(parse(".").unwrap().is_root());
}

#[test]
fn refuses_unsafe_paths() {
    for raw in [
        "",
        "/etc/passwd",
        "//x",
        "..",
        "../evil",
        "a/../../evil",
        "a/..",
        "./..",
    ] {
        let err = parse(raw).unwrap_err();
        assert!(
            matches!(err, UnpackError::UnsafePath { .. }),
            "{raw:?}: {err}"
        );
        assert!(
            err.to_string().contains(&format!("{raw:?}")),
            "{err} names the path"
        );
    }
    let err = EntryPath::parse(b"a\0b", &Limits::default()).unwrap_err();
    assert!(matches!(err, UnpackError::UnsafePath { reason, .. } if reason.contains("NUL")));
}

#[test]
fn limits_length_and_depth() {
    let limits = Limits {
        max_path_bytes: 10,
        max_depth: 3,
        ..Limits::default()
    };
    assert!(EntryPath::parse(b"0123456789", &limits).is_ok());
    let err = EntryPath::parse(b"0123456789a", &limits).unwrap_err();
    assert!(
        matches!(
            err,
            UnpackError::PathTooLong {
                len: 11,
                limit: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(EntryPath::parse(b"a/b/c", &limits).is_ok());
    let err = EntryPath::parse(b"a/b/c/d", &limits).unwrap_err();
    assert!(
        matches!(
            err,
            UnpackError::PathTooDeep {
                depth: 4,
                limit: 3,
                ..
            }
        ),
        "{err}"
    );
    // `.` components do not count towards depth.
    assert!(EntryPath::parse(b"a/./b/./c", &limits).is_ok());
}

#[test]
fn ancestors_are_outermost_first() {
    let path = parse("a/b/c").unwrap();
    let ancestors = path.ancestors_under(Path::new("/r"));
    assert_eq!(
        ancestors,
        [
            (Path::new("/r/a").to_path_buf(), "a".to_owned()),
            (Path::new("/r/a/b").to_path_buf(), "a/b".to_owned())
        ]
    );
    assert_eq!(path.under(Path::new("/r")), Path::new("/r/a/b/c"));
    assert!(parse("a")
        .unwrap()
        .ancestors_under(Path::new("/r"))
        .is_empty());
}

fn target(link: &str, raw: &str) -> Result<String, UnpackError> {
    let limits = Limits::default();
    let link = EntryPath::parse(link.as_bytes(), &limits).unwrap();
    symlink_target(&link, "link", raw.as_bytes(), &limits).map(|t| lossy(&t))
}

#[test]
fn accepts_targets_inside_the_release() {
    assert_eq!(target("a", "b").unwrap(), "b");
    assert_eq!(target("a", "./b/c/").unwrap(), "b/c");
    assert_eq!(target("a", ".").unwrap(), ".");
    assert_eq!(target("a/b", "../c").unwrap(), "../c");
    assert_eq!(target("a/b", "..").unwrap(), "..");
    assert_eq!(target("a/b/c", "../../x/y").unwrap(), "../../x/y");
    assert_eq!(target("a/b/c", ".././../x").unwrap(), "../../x");
}

#[test]
fn refuses_targets_leaving_the_release() {
    for (link, raw) in [
        ("x", ".."),
        ("a", "../x"),
        ("a/b", "../../x"),
        ("a/b/c", "../../../x"),
        ("a", "/etc"),
        ("a", ""),
        ("a/b", "x/../.."),
        // Lexically inside, but `..` after a name: refused (see `symlink_target`).
        ("b", "a/a/../.."),
        ("a/b", "c/../d"),
    ] {
        let err = target(link, raw).unwrap_err();
        assert!(
            matches!(err, UnpackError::UnsafeSymlink { .. }),
            "{link} -> {raw}: {err}"
        );
    }
    let limits = Limits {
        max_path_bytes: 4,
        ..Limits::default()
    };
    let link = EntryPath::parse(b"a", &limits).unwrap();
    assert!(symlink_target(&link, "a", b"abcd", &limits).is_ok());
    assert!(symlink_target(&link, "a", b"abcde", &limits).is_err());
    assert!(symlink_target(&link, "a", b"a\0", &limits).is_err());
}
