//! `scripts/install.sh` into a root of its own: the binaries, the units, the
//! config template (every example in it a real field) and the data dir,
//! and a second run that keeps the operator's config.

use reef_tests::reef::reef_bin;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn install(root: &Path) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install.sh");
    std::process::Command::new("bash")
        .arg(script)
        .args(["--root"])
        .arg(root)
        .arg("--binary")
        .arg(reef_bin())
        .output()
        .expect("install.sh")
}

/// `reef server --config FILE` with a name it refuses: a config file it
/// could not read fails earlier, naming the file.
fn server_config_error(file: &Path) -> String {
    let out = std::process::Command::new(reef_bin())
        .args(["server", "--config"])
        .arg(file)
        .args(["--name", "not a name"])
        .output()
        .expect("reef server");
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_install_script_puts_everything_in_place_and_keeps_an_edited_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let out = install(root);
    assert!(out.status.success(), "{out:?}");
    for binary in ["usr/local/bin/reef", "usr/local/bin/nats-server"] {
        assert_eq!(mode(&root.join(binary)), 0o755, "{binary}");
    }
    let nats = std::fs::read(root.join("usr/local/bin/nats-server")).expect("nats-server");
    assert_eq!(&nats[..4], b"\x7fELF", "the server itself, not a wrapper");
    for unit in ["reef-server.service", "reef-agent.service"] {
        let text =
            std::fs::read_to_string(root.join("etc/systemd/system").join(unit)).expect("a unit");
        assert!(text.contains("ExecStart=/usr/local/bin/reef "), "{unit}");
        assert!(text.contains("KillMode=mixed"), "{unit}");
    }
    assert_eq!(mode(&root.join("var/lib/reef")), 0o700);

    // The template reads as a config, and every example in it is a field.
    let template = root.join("etc/reef/server.toml");
    let said = server_config_error(&template);
    assert!(said.contains("--name"), "{said}");
    let text = std::fs::read_to_string(&template).expect("template");
    let examples: String = text
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| {
            line.split_once(" = ")
                .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        })
        .map(|line| {
            // Drop a trailing comment.
            let line = line.split("  #").next().unwrap_or(line);
            format!("{line}\n")
        })
        .collect();
    assert!(examples.lines().count() >= 5, "{examples}");
    let uncommented = dir.path().join("examples.toml");
    std::fs::write(&uncommented, &examples).expect("write");
    let said = server_config_error(&uncommented);
    assert!(
        said.contains("--name") && !said.contains("unknown field"),
        "{examples}\n{said}"
    );

    // A second run keeps the operator's edits.
    std::fs::write(&template, "acme_email = \"ops@example.com\"\n").expect("edit");
    let out = install(root);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&template).expect("config"),
        "acme_email = \"ops@example.com\"\n"
    );
}
