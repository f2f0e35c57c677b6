//! Secrets for reef apps, at rest and in transit; this is what `reef secrets`
//! uses. At rest, every secret in the NATS KV bucket is encrypted with the
//! cluster key, a 32-byte key kept in a `0600` file on the coordinator
//! machines and never in NATS, using XChaCha20-Poly1305 with a random nonce
//! and a context such as `"app/KEY"` bound as associated data. In transit, the
//! coordinator decrypts the secrets of an app and seals them to the X25519
//! public key of each node that runs it (an ephemeral key pair per message, a
//! SHA-256 key derivation, XChaCha20-Poly1305 again); the node opens them with
//! its own key, kept in its data directory, and hands them to the app process
//! without writing them to disk in the clear. Keys and opened plaintexts are
//! wiped from memory when dropped.
//!
//! - [`cluster_key`]: the cluster key, `encrypt` and `decrypt`.
//! - [`node_key`]: node key pairs, [`seal`] and [`NodeKey::open`].
//! - [`backup`]: backup parts, encrypted on a node to the cluster's backup
//!   key and opened where the cluster key is.
//! - `keyfile`: the hex, `0600`, atomically created key file both keys use.
//! - `cipher`: the XChaCha20-Poly1305 framing both formats share.
//! - [`password`]: generated passwords for the services reef runs.
//! - [`error`]: [`SecretsError`], whose messages never contain secrets.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod backup;
mod cipher;
pub mod cluster_key;
pub mod error;
mod keyfile;
pub mod node_key;
pub mod password;

pub use cluster_key::ClusterKey;
pub use error::SecretsError;
pub use node_key::{seal, NodeKey};
pub use zeroize::Zeroizing;
