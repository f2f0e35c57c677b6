//! TLS certificates in the cluster: stored in the certificates bucket with
//! their private key encrypted with the cluster key and sealed to each node,
//! added from files by operators, and ordered and renewed over ACME by the
//! leader for the domains of the apps that run.
//!
//! - `check`: [`check_file_certificate`], what a certificate from files must pass.
//! - `keys`: encrypting and sealing a certificate's key.
//! - `bucket`: typed access to the certificates bucket.
//! - `plan`: the manager's decisions, as pure functions.
//! - `manager`: the leader's certificate task: sealing for new nodes, orders, renewals.
//! - `acme_task`: one ACME order, and the cluster's ACME account.
//! - `sink`: challenge answers published to the challenges bucket.
//! - `status`: what the API and the manager share.
//! - `api`: `reef certs add`, `list` and `rm`.

mod acme_task;
mod api;
mod bucket;
mod check;
mod keys;
mod manager;
mod plan;
mod sink;
mod status;

pub(crate) use api::list;
pub use check::{check_file_certificate, CheckedCertificate, FileCertError, MAX_PEM_BYTES};
pub(crate) use manager::{wanted, Manager, Settings};
pub(crate) use status::Handle;
