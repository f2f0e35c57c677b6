//! The cluster's keys for a server that joins (`reef join --server`): the
//! files of the cluster directory every server needs to be a NATS server of
//! the cluster and a coordinator (the operator, the accounts, the signing
//! keys, the CA, the credentials, the key that encrypts secrets), packed
//! into one document. The leader seals it to the X25519 key the joining
//! machine made; the machine opens it and writes the files with
//! [`unpack`]. Only the files named in [`SHARED`] travel, and a document
//! naming any other file is refused.

use crate::files::{self, Mode};
use crate::{ClusterDir, TrustError};
use std::collections::BTreeMap;
use std::path::Path;
use zeroize::Zeroizing;

/// The files a server shares with the others, and who may read them.
/// `cluster.json` comes last: written last, its presence means the
/// directory is complete.
pub const SHARED: [(&str, Mode); 15] = [
    ("operator.jwt", Mode::Public),
    ("accounts/reef.jwt", Mode::Public),
    ("accounts/system.jwt", Mode::Public),
    ("keys/operator.nk", Mode::Private),
    ("keys/account.nk", Mode::Private),
    ("keys/account-signing.nk", Mode::Private),
    ("keys/system.nk", Mode::Private),
    ("keys/ca-key.pem", Mode::Private),
    ("keys/assign.nk", Mode::Private),
    ("tls/ca.pem", Mode::Public),
    ("admin.creds", Mode::Private),
    ("coordinator.creds", Mode::Private),
    ("system.creds", Mode::Private),
    (CLUSTER_KEY, Mode::Private),
    ("cluster.json", Mode::Public),
];

/// What a bundle for node `node` is sealed under, so that only a document
/// sealed for that node opens as its own.
pub fn context(node: &str) -> String {
    format!("reef-server-bundle:{node}")
}

/// The file of the key that encrypts secrets, in a server's data dir.
pub const CLUSTER_KEY: &str = "cluster.key";

/// The largest document accepted (real ones are a few KiB).
const MAX_BUNDLE: usize = 256 * 1024;
/// The largest file read into one.
const MAX_FILE: u64 = 64 * 1024;

/// File name → contents, wiped when dropped (keys are among them).
#[derive(Default)]
struct Files(BTreeMap<String, String>);

impl Drop for Files {
    fn drop(&mut self) {
        self.0.values_mut().for_each(zeroize::Zeroize::zeroize);
    }
}

/// The document holding `dir`'s shared files, with the cluster key read
/// from `cluster_key` (it may live outside the directory).
pub fn pack(dir: &ClusterDir, cluster_key: &Path) -> Result<Zeroizing<Vec<u8>>, TrustError> {
    // Made on first use elsewhere: make sure it exists before it is copied.
    dir.assignment_key()?;
    let mut files = Files::default();
    for (name, mode) in SHARED {
        let path = match name {
            CLUSTER_KEY => cluster_key.to_path_buf(),
            name => dir.dir.join(name),
        };
        let text = match mode {
            Mode::Private => files::read_private(&path, MAX_FILE)?,
            Mode::Public => Zeroizing::new(files::read(&path, MAX_FILE)?),
        };
        files.0.insert(name.to_string(), text.to_string());
    }
    let json = serde_json::to_vec(&files.0).map_err(|e| TrustError::Creds(e.to_string()))?;
    Ok(Zeroizing::new(json))
}

/// Writes the files of `document` into `dir`, which must not hold a cluster
/// yet; returns the opened directory. Anything but exactly the files of
/// [`SHARED`] is refused before a file is written.
pub fn unpack(document: &[u8], dir: &Path) -> Result<ClusterDir, TrustError> {
    let bad = |reason: String| TrustError::Dir {
        path: dir.to_path_buf(),
        reason: format!("the cluster's keys as received: {reason}"),
    };
    if document.len() > MAX_BUNDLE {
        return Err(bad(format!("larger than {MAX_BUNDLE} bytes")));
    }
    let files =
        Files(serde_json::from_slice(document).map_err(|e| bad(format!("not a document: {e}")))?);
    let files = &files.0;
    for name in files.keys() {
        if !SHARED.iter().any(|(shared, _)| shared == name) {
            return Err(bad(format!(
                "it names {name:?}, which is not a shared file"
            )));
        }
    }
    for (name, _) in SHARED {
        match files.get(name) {
            None => return Err(bad(format!("{name} is missing"))),
            Some(text) if text.len() as u64 > MAX_FILE => {
                return Err(bad(format!("{name} is larger than {MAX_FILE} bytes")))
            }
            Some(_) => {}
        }
    }
    if dir.join("cluster.json").exists() {
        return Err(TrustError::Dir {
            path: dir.to_path_buf(),
            reason: "already holds a cluster (cluster.json exists); nothing was changed".into(),
        });
    }
    for (name, mode) in SHARED {
        let text = files.get(name).map(String::as_str).unwrap_or_default();
        files::write(&dir.join(name), text.as_bytes(), mode)?;
    }
    ClusterDir::open(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_directory_travels_whole_and_opens_the_same() {
        let from = tempfile::tempdir().expect("tempdir");
        let cluster = ClusterDir::init(from.path(), "c1").expect("init");
        files::write(
            &from.path().join("cluster.key"),
            "ab".repeat(32).as_bytes(),
            Mode::Private,
        )
        .expect("key");
        let document = pack(&cluster, &from.path().join("cluster.key")).expect("pack");

        let to = tempfile::tempdir().expect("tempdir");
        let copy = unpack(&document, to.path()).expect("unpack");
        assert_eq!(copy.info, cluster.info);
        for (name, mode) in SHARED {
            let a = std::fs::read(from.path().join(name)).expect("source");
            let b = std::fs::read(to.path().join(name)).expect("copy");
            assert_eq!(a, b, "{name}");
            let bits = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(to.path().join(name))
                    .expect("meta")
                    .permissions(),
            ) & 0o777;
            let want = match mode {
                Mode::Private => 0o600,
                Mode::Public => 0o644,
            };
            assert_eq!(bits, want, "{name}");
        }
        // The copy signs what the original verifies.
        let key = copy.assignment_key().expect("assign key");
        let original = cluster.assignment_key().expect("assign key");
        assert_eq!(key.public_key(), original.public_key());

        // Not twice into the same directory.
        assert!(unpack(&document, to.path()).is_err());
    }

    #[test]
    fn a_document_with_other_or_missing_files_writes_nothing() {
        let from = tempfile::tempdir().expect("tempdir");
        let cluster = ClusterDir::init(from.path(), "c1").expect("init");
        files::write(
            &from.path().join("cluster.key"),
            "ab".repeat(32).as_bytes(),
            Mode::Private,
        )
        .expect("key");
        let document = pack(&cluster, &from.path().join("cluster.key")).expect("pack");
        let mut files: BTreeMap<String, String> = serde_json::from_slice(&document).expect("json");

        let mut escaping = files.clone();
        escaping.insert("../../etc/cron.d/x".into(), "boom".into());
        let mut missing = files.clone();
        missing.remove("keys/ca-key.pem");
        files.insert("nats/nats.conf".into(), "x".into());
        for bad in [escaping, missing, files] {
            let to = tempfile::tempdir().expect("tempdir");
            let bytes = serde_json::to_vec(&bad).expect("json");
            assert!(unpack(&bytes, to.path()).is_err());
            assert_eq!(
                std::fs::read_dir(to.path()).expect("dir").count(),
                0,
                "something was written"
            );
        }
        let to = tempfile::tempdir().expect("tempdir");
        assert!(unpack(b"{not json", to.path()).is_err());
        assert!(unpack(&vec![b' '; MAX_BUNDLE + 1], to.path()).is_err());
    }
}
