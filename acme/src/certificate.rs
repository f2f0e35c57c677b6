//! The certificate an order produces: a fresh ECDSA P-256 key pair per
//! certificate, the signing request sent to the CA, and the
//! [`IssuedCertificate`] handed back, checked to match the key.

use std::fmt;
use std::time::SystemTime;

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256};
use zeroize::Zeroizing;

use crate::der::leaf_facts;
use crate::error::AcmeError;
use crate::validity::leaf_der;

/// A certificate and its private key, ready for a TLS server.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The names the certificate is valid for, as ordered.
    pub domains: Vec<String>,
    /// The certificate chain as PEM, leaf first, then the intermediates.
    pub chain_pem: String,
    /// The private key as PKCS#8 PEM; wiped from memory when dropped.
    pub key_pem: Zeroizing<String>,
    /// The leaf's `notBefore`.
    pub not_before: SystemTime,
    /// The leaf's `notAfter`; renew well before it (see [`crate::needs_renewal`]).
    pub not_after: SystemTime,
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("domains", &self.domains)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// A new key pair and a DER certificate signing request for `domains`.
pub(crate) fn key_and_csr(domains: &[String]) -> Result<(KeyPair, Vec<u8>), AcmeError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(AcmeError::KeyGeneration)?;
    let mut params = CertificateParams::new(domains.to_vec()).map_err(AcmeError::KeyGeneration)?;
    // The CA takes the names from the subjectAltName extension; the subject stays empty.
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(AcmeError::KeyGeneration)?;
    Ok((key, csr.der().to_vec()))
}

/// Checks that `chain_pem` is for `key` and reads its validity period.
pub(crate) fn assemble(
    domains: &[String],
    chain_pem: String,
    key: &KeyPair,
) -> Result<IssuedCertificate, AcmeError> {
    let leaf = leaf_der(&chain_pem)?;
    let facts = leaf_facts(&leaf)?;
    if facts.public_key != key.public_key_raw() {
        return Err(AcmeError::KeyMismatch);
    }
    Ok(IssuedCertificate {
        domains: domains.to_vec(),
        not_before: facts.not_before,
        not_after: facts.not_after,
        chain_pem,
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

#[cfg(test)]
#[path = "certificate_tests.rs"]
mod tests;
