//! The certificates the HTTPS listener serves, chosen per connection by the
//! name the client asks for (SNI): an exact name first, then a wildcard one
//! level up (`*.example.com` covers `a.example.com`, not `example.com` nor
//! `a.b.example.com`). Names compare case-insensitively.
//!
//! A certificate is checked when it is set, not when a client first needs it:
//! the PEM must parse, the key must belong to the certificate, and the
//! certificate must cover the name it is set for.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::verify_server_name;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::host::normalize;

/// Why a certificate was refused.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Names are host names, or `*.` followed by a host name of two labels or more.
    #[error("{domain:?} is not a domain name (an exact name, or *.example.com)")]
    BadDomain { domain: String },
    /// The chain PEM has a broken block.
    #[error("the certificate chain is not valid PEM: {0}")]
    ChainPem(pem::Error),
    /// The chain PEM holds no `CERTIFICATE` block.
    #[error("the certificate chain holds no certificate")]
    NoCertificate,
    /// The key PEM has no private key block, or a broken one.
    #[error("the private key is not valid PEM: {0}")]
    KeyPem(pem::Error),
    /// The key is not RSA, ECDSA (P-256, P-384) or Ed25519.
    #[error("the private key is not of a supported kind: {0}")]
    UnsupportedKey(rustls::Error),
    /// The first certificate of the chain cannot be parsed.
    #[error("the certificate cannot be read: {0}")]
    BadCertificate(rustls::Error),
    /// The key is not the certificate's.
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    /// The certificate is not valid for the name it was set for.
    #[error("the certificate does not cover {domain}")]
    WrongName { domain: String },
}

/// The certificates by name. Cheap to clone (Arc inside); a change is seen by
/// the next handshake.
#[derive(Clone, Default)]
pub struct Certificates {
    by_name: Arc<RwLock<HashMap<String, Arc<CertifiedKey>>>>,
}

impl Certificates {
    /// No certificates: every handshake fails until one is set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `chain_pem` (the certificate first, then its intermediates) with
    /// `key_pem` (PKCS#8, PKCS#1 or SEC1) for `domain`, an exact name or a
    /// wildcard such as `*.example.com`; replaces what the name had.
    pub fn set(
        &self,
        domain: &str,
        chain_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<(), CertError> {
        let name = valid_name(domain).ok_or_else(|| CertError::BadDomain {
            domain: domain.to_owned(),
        })?;
        let certified = certified_key(&name, chain_pem.as_ref(), key_pem.as_ref())?;
        self.by_name
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, Arc::new(certified));
        Ok(())
    }

    /// Stops serving `domain`; true if it had a certificate.
    pub fn remove(&self, domain: &str) -> bool {
        self.by_name
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&normalize(domain))
            .is_some()
    }

    /// The names that have a certificate, sorted.
    pub fn domains(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .by_name
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The certificate for a client asking for `server_name`.
    pub(crate) fn lookup(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = normalize(server_name);
        let by_name = self.by_name.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(exact) = by_name.get(&name) {
            return Some(Arc::clone(exact));
        }
        let (_, parent) = name.split_once('.')?;
        by_name.get(&format!("*.{parent}")).cloned()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // No SNI (a client dialing an address) or no certificate: rustls ends
        // that handshake, and only that one.
        self.lookup(hello.server_name()?)
    }
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("domains", &self.domains())
            .finish()
    }
}

/// `domain` normalized, if it is a host name or a one-level wildcard of one.
fn valid_name(domain: &str) -> Option<String> {
    let name = normalize(domain);
    let (host, wildcard) = match name.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (name.as_str(), false),
    };
    let labels: Vec<&str> = host.split('.').collect();
    let labels_ok = labels.iter().all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    // `*.com` would cover a whole top-level domain.
    let enough = !wildcard || labels.len() >= 2;
    (labels_ok && enough && host.len() <= 253).then_some(name)
}

/// Parses and checks a chain and key for `name` (already validated).
pub(crate) fn certified_key(
    name: &str,
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, CertError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(CertError::ChainPem)?;
    let leaf = chain.first().ok_or(CertError::NoCertificate)?;
    let parsed = ParsedCertificate::try_from(leaf).map_err(CertError::BadCertificate)?;
    // A wildcard certificate covers every name one level down only if it
    // covers an arbitrary one; the probe label is just such a name.
    let probe = match name.strip_prefix("*.") {
        Some(parent) => format!("reef-wildcard-probe.{parent}"),
        None => name.to_owned(),
    };
    let server_name = ServerName::try_from(probe).map_err(|_| CertError::BadDomain {
        domain: name.to_owned(),
    })?;
    verify_server_name(&parsed, &server_name).map_err(|_| CertError::WrongName {
        domain: name.to_owned(),
    })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(CertError::KeyPem)?;
    let signing_key = any_supported_type(&key).map_err(CertError::UnsupportedKey)?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(CertError::KeyMismatch),
        Err(other) => Err(CertError::BadCertificate(other)),
    }
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
