//! Digests of a job's declared output files, read by the agent (as root)
//! from a directory the job could write: every part of each path must be
//! a plain directory or, at its end, a regular file, never a symbolic link,
//! so a job cannot make the agent read (or hang on) anything outside its
//! own directory.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Each of `paths` (relative to `dir`, already validated) with the SHA-256
/// of its contents in hex, or None where it is missing or not a regular
/// file reached without symbolic links.
pub fn digests(dir: &Path, paths: &[String]) -> Vec<(String, Option<String>)> {
    paths
        .iter()
        .map(|path| (path.clone(), digest(dir, path)))
        .collect()
}

fn digest(dir: &Path, path: &str) -> Option<String> {
    let mut at = dir.to_path_buf();
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let meta = std::fs::symlink_metadata(&at).ok()?;
        let last = i + 1 == parts.len();
        let fits = if last {
            meta.file_type().is_file()
        } else {
            meta.file_type().is_dir()
        };
        if !fits {
            return None;
        }
    }
    // O_NOFOLLOW and O_NONBLOCK: the file checked above cannot have become
    // a link or a FIFO since (nothing of the job runs any more), but the
    // open does not rely on that.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&at)
        .ok()?;
    if !file.metadata().ok()?.file_type().is_file() {
        return None;
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(hex(&hasher.finalize().into()))
}

/// Lowercase hex of a digest.
pub fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_hashed_and_anything_else_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("out.txt"), b"42\n").expect("write");
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("sub/a"), b"").expect("write");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"key").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), d.join("link")).expect("link");
        std::os::unix::fs::symlink(outside.path(), d.join("dirlink")).expect("link");
        nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("fifo");
        let got = digests(
            d,
            &[
                "out.txt",
                "sub/a",
                "missing",
                "link",
                "dirlink/secret",
                "fifo",
                "sub",
            ]
            .map(String::from),
        );
        let sha = |bytes: &[u8]| hex(&Sha256::digest(bytes).into());
        assert_eq!(got[0], ("out.txt".into(), Some(sha(b"42\n"))));
        assert_eq!(got[1], ("sub/a".into(), Some(sha(b""))));
        for (path, digest) in &got[2..] {
            assert_eq!(digest, &None, "{path} is not a regular file of the job's");
        }
    }
}
