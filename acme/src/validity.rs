//! When a certificate is valid, and when it is time to renew it. Pure
//! functions over PEM text and times, so the coordinator can check stored
//! certificates without talking to the CA.

use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::der::leaf_facts;
use crate::error::CertificateError;

/// Renew this long before a certificate expires: Let's Encrypt's advice for
/// its 90-day certificates, leaving weeks to retry if renewals fail.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The validity period (`notBefore`, `notAfter`) of the first certificate (the
/// leaf) in a PEM chain.
pub fn certificate_validity(chain_pem: &str) -> Result<(SystemTime, SystemTime), CertificateError> {
    let leaf = leaf_der(chain_pem)?;
    let facts = leaf_facts(&leaf)?;
    Ok((facts.not_before, facts.not_after))
}

/// Whether a certificate that expires at `not_after` should be renewed at
/// `now`: when less than `renew_before` (e.g. [`DEFAULT_RENEW_BEFORE`]) is left.
pub fn needs_renewal(not_after: SystemTime, now: SystemTime, renew_before: Duration) -> bool {
    match not_after.duration_since(now) {
        Ok(left) => left < renew_before,
        Err(_) => true,
    }
}

/// The DER of the first certificate in a PEM chain.
pub(crate) fn leaf_der(chain_pem: &str) -> Result<CertificateDer<'static>, CertificateError> {
    match CertificateDer::pem_slice_iter(chain_pem.as_bytes()).next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(err)) => Err(CertificateError::Pem(err.to_string())),
        None => Err(CertificateError::NoCertificate),
    }
}

#[cfg(test)]
#[path = "validity_tests.rs"]
mod tests;
