//! Checking a certificate an operator adds from files, before it is stored:
//! the names are ones a certificate may be served for, the PEM parses, the
//! key belongs to the certificate, the certificate covers every name, and it
//! is valid now. The CLI runs it before sending anything; the coordinator
//! runs it again on what it receives. The key and name checks are the very
//! ones every node proxy makes when it installs the certificate.

use reef_proto::certs::validate_cert_domain;
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

/// The most names one certificate may be added for.
pub const MAX_DOMAINS: usize = 100;
/// The largest chain or key PEM accepted.
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// What is wrong with a certificate given from files.
#[derive(Debug, thiserror::Error)]
pub enum FileCertError {
    /// No domain was given.
    #[error("no domain given: name at least one domain the certificate is for")]
    NoDomains,
    /// Too many domains.
    #[error("{0} domains given; at most {MAX_DOMAINS}")]
    TooManyDomains(usize),
    /// A domain is not a name a certificate can be served for.
    #[error("{0}")]
    BadDomain(String),
    /// The same domain twice.
    #[error("{0} is given twice")]
    Duplicate(String),
    /// A PEM file is too large to be a certificate or key.
    #[error("the {what} is {len} bytes; a certificate chain or key is at most {MAX_PEM_BYTES}")]
    TooLarge { what: &'static str, len: usize },
    /// The chain, the key, or the pair of them is unusable for a domain.
    #[error("{domain}: {source}")]
    Unusable {
        domain: String,
        #[source]
        source: reef_proxy::CertError,
    },
    /// The leaf's validity period cannot be read.
    #[error("the certificate's validity cannot be read: {0}")]
    Validity(#[from] reef_acme::CertificateError),
    /// The certificate has expired.
    #[error("the certificate expired {days} days ago; get a new one")]
    Expired { days: u64 },
    /// The certificate is not valid yet.
    #[error("the certificate is not valid until {days} days from now; add it then")]
    NotYetValid { days: u64 },
}

/// A certificate that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedCertificate {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl CheckedCertificate {
    pub fn not_before_ms(&self) -> u64 {
        super::plan::millis(self.not_before)
    }

    pub fn not_after_ms(&self) -> u64 {
        super::plan::millis(self.not_after)
    }
}

/// Checks `chain_pem` (leaf first) and `key_pem` for `domains` at `now`.
pub fn check_file_certificate(
    domains: &[String],
    chain_pem: &str,
    key_pem: &[u8],
    now: SystemTime,
) -> Result<CheckedCertificate, FileCertError> {
    if domains.is_empty() {
        return Err(FileCertError::NoDomains);
    }
    if domains.len() > MAX_DOMAINS {
        return Err(FileCertError::TooManyDomains(domains.len()));
    }
    for (what, len) in [
        ("certificate chain", chain_pem.len()),
        ("key", key_pem.len()),
    ] {
        if len > MAX_PEM_BYTES {
            return Err(FileCertError::TooLarge { what, len });
        }
    }
    let mut seen = BTreeSet::new();
    for domain in domains {
        validate_cert_domain(domain).map_err(FileCertError::BadDomain)?;
        if !seen.insert(domain) {
            return Err(FileCertError::Duplicate(domain.clone()));
        }
    }
    let (not_before, not_after) = reef_acme::certificate_validity(chain_pem)?;
    // The nodes' own check: PEM, key kind, key pair, and the name.
    let probe = reef_proxy::Certificates::new();
    for domain in domains {
        probe
            .set(domain, chain_pem, key_pem)
            .map_err(|source| FileCertError::Unusable {
                domain: domain.clone(),
                source,
            })?;
    }
    if not_after <= now {
        return Err(FileCertError::Expired {
            days: days(now.duration_since(not_after).unwrap_or_default()),
        });
    }
    if not_before > now {
        return Err(FileCertError::NotYetValid {
            days: days(not_before.duration_since(now).unwrap_or_default()).max(1),
        });
    }
    Ok(CheckedCertificate {
        not_before,
        not_after,
    })
}

fn days(duration: Duration) -> u64 {
    duration.as_secs() / 86_400
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
