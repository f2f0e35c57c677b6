//! The cluster's identity and who may do what, in NATS's own security
//! model: an operator, the reef account and the system account (nkeys and
//! JWTs), one user credential per person, coordinator and node with the
//! subjects its role allows, a CA for TLS, and the nats-server
//! configuration that enforces all of it.
//!
//! - [`jwt`]: NATS JWTs, written and verified.
//! - [`creds`]: the standard `.creds` file.
//! - [`permissions`]: each role's subjects.
//! - [`pki`]: the CA and the certificates it issues.
//! - [`natsconf`]: nats-server's configuration.
//! - [`dir`]: the cluster directory that holds the keys.
//! - [`bundle`]: the cluster directory's shared files, for a server that joins.
//! - [`identity`]: what a credential says about its holder.
//! - [`token`]: join tokens.
//! - [`files`]: files written whole or not at all, private ones 0600.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod bundle;
pub mod creds;
pub mod dir;
mod error;
pub mod files;
pub mod identity;
pub mod jwt;
pub mod natsconf;
pub mod permissions;
pub mod pki;
pub mod token;

pub use dir::{verify_assignment, AssignmentKey, ClusterDir, ClusterInfo, ServerSpec};
pub use error::TrustError;
pub use permissions::NodeTrust;

#[cfg(test)]
mod tests;
