//! The settings for talking to an ACME certificate authority, and the
//! directory URLs of Let's Encrypt.

use std::time::Duration;

use crate::error::AcmeError;

/// Let's Encrypt's production directory: certificates browsers trust, with
/// strict rate limits.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Let's Encrypt's staging directory: untrusted certificates, generous rate
/// limits; use it to try a setup before production.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// How to reach the ACME certificate authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The CA's directory URL, e.g. [`LETS_ENCRYPT_PRODUCTION`]. Must be `https://`.
    pub directory_url: String,
    /// Contact URLs for the account, each `mailto:someone@example.com`. May be
    /// empty; Let's Encrypt uses it only for problem notices.
    pub contact: Vec<String>,
    /// PEM certificates to trust for the CA's HTTPS server *instead of* the
    /// public web roots, for a private CA such as pebble. `None` trusts the
    /// public web roots (the `webpki-roots` set), which is right for Let's Encrypt.
    pub ca_root_pem: Option<String>,
    /// The longest one call (`Account::create`, `Account::load`,
    /// `Account::issue`) may take, end to end; every single request to the CA
    /// is bounded by it too. Retracting challenges after an issue gets a short
    /// extra allowance of its own.
    pub timeout: Duration,
}

impl AcmeConfig {
    /// The default [`AcmeConfig::timeout`]: long enough for Let's Encrypt to
    /// validate a few domains, short enough that a stuck order is noticed.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

    /// Settings for `directory_url` with no contact, public web roots and the
    /// default timeout.
    pub fn new(directory_url: impl Into<String>) -> Self {
        Self {
            directory_url: directory_url.into(),
            contact: Vec::new(),
            ca_root_pem: None,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Checks what can be checked without the network.
    pub(crate) fn check(&self) -> Result<(), AcmeError> {
        if !self.directory_url.starts_with("https://") {
            return Err(AcmeError::Config(format!(
                "directory_url {:?} is not an https:// URL; use the CA's directory URL, e.g. {LETS_ENCRYPT_STAGING}",
                self.directory_url
            )));
        }
        if let Some(bad) = self.contact.iter().find(|c| !is_mailto(c)) {
            return Err(AcmeError::Config(format!(
                "contact {bad:?} is not a mailto: URL; write it as mailto:someone@example.com"
            )));
        }
        if self.timeout.is_zero() {
            return Err(AcmeError::Config(
                "timeout is zero; give the CA time to answer, e.g. 120 seconds".to_string(),
            ));
        }
        Ok(())
    }
}

fn is_mailto(contact: &str) -> bool {
    contact
        .strip_prefix("mailto:")
        .and_then(|address| address.split_once('@'))
        .is_some_and(|(user, host)| {
            !user.is_empty() && !host.is_empty() && !contact.contains(char::is_whitespace)
        })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
