//! What can go wrong with the cluster's keys, credentials and certificates.

use std::path::PathBuf;

/// An error of the trust crate; each message names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key could not be created, read or used.
    #[error("nkey: {0}")]
    Key(String),
    /// A JWT that is not one reef or NATS can use.
    #[error("invalid JWT: {0}")]
    Jwt(String),
    /// A `.creds` file that does not hold a user JWT and seed.
    #[error("invalid credentials file: {0}")]
    Creds(String),
    /// A certificate or its key could not be made or read.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A name that cannot be used for a user or node.
    #[error("invalid name {name:?}: {reason}")]
    Name { name: String, reason: String },
    /// The cluster directory is missing a file, or holds one it should not.
    #[error("{}: {reason}", path.display())]
    Dir { path: PathBuf, reason: String },
    /// A file of the cluster directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl TrustError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| TrustError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
