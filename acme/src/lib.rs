//! TLS certificates from an ACME certificate authority (Let's Encrypt, or a
//! private one such as pebble) over the HTTP-01 challenge. The coordinator
//! holds one [`Account`], asks it to [`Account::issue`] a certificate for an
//! app's domains, and publishes the challenge answers through a
//! [`ChallengeSink`] that every node proxy serves from.
//!
//! - `config`: the [`AcmeConfig`] settings and the Let's Encrypt directory URLs.
//! - `account`: creating an [`Account`], or loading it from stored credentials.
//! - `issue`: one certificate order, from challenges to the certificate chain.
//! - `challenge`: the [`ChallengeSink`] trait, an in-memory sink, and the
//!   challenge URL path the proxies answer.
//! - `certificate`: the [`IssuedCertificate`], its key pair and request.
//! - `validity`: reading a certificate's validity period, and renewal checks.
//! - `der`: the small DER reader `validity` uses.
//! - `domain`: which domain names can be ordered, [`validate_domain`].
//! - `http`: the HTTPS client for the ACME server (rustls with ring, bounded waits).
//! - `error`: [`AcmeError`], what went wrong and what to do about it.
//! - `testing` (feature `testing`): a real pebble ACME server and an HTTP-01
//!   responder, for end-to-end tests.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod account;
mod certificate;
mod challenge;
mod config;
mod der;
mod domain;
mod error;
mod http;
mod issue;
mod validity;

#[cfg(feature = "testing")]
pub mod testing;

pub use account::Account;
pub use certificate::IssuedCertificate;
pub use challenge::{
    challenge_token, ChallengeSink, MemoryChallenges, SinkError, CHALLENGE_PATH_PREFIX,
};
pub use config::{AcmeConfig, LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING};
pub use domain::{validate_domain, InvalidDomain};
pub use error::{AcmeError, CertificateError};
pub use http::web_connector;
pub use validity::{certificate_validity, needs_renewal, DEFAULT_RENEW_BEFORE};
