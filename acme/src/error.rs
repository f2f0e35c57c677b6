//! [`AcmeError`], everything that can stop an account or a certificate
//! order, and [`CertificateError`], what can be wrong with a certificate PEM.
//! Each message says what went wrong and what to do about it.

use std::time::Duration;

use crate::challenge::SinkError;
use crate::domain::InvalidDomain;

/// Why an ACME account or certificate order failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// A setting in [`crate::AcmeConfig`] cannot work.
    #[error("ACME settings: {0}")]
    Config(String),

    /// [`crate::AcmeConfig::ca_root_pem`] holds no certificate rustls accepts.
    #[error("ca_root_pem is not usable ({0}); give the PEM of the root certificate that signs the CA server's HTTPS certificate")]
    CaRoot(String),

    /// The stored account credentials are not what [`crate::Account::create`] returned.
    #[error("the stored ACME account credentials cannot be read ({0}); restore them from where they were stored, or create a new account")]
    Credentials(#[source] serde_json::Error),

    /// The credentials of a new account could not be encoded.
    #[error("encoding the new ACME account's credentials failed ({0}); create the account again")]
    EncodeCredentials(#[source] serde_json::Error),

    /// The stored account belongs to another CA than the configured one.
    #[error("the stored ACME account belongs to {stored}, not to the configured {configured}; create a new account for {configured}")]
    WrongDirectory {
        /// The directory URL in the credentials.
        stored: String,
        /// The directory URL in the config.
        configured: String,
    },

    /// A requested domain name cannot be put in a certificate.
    #[error(transparent)]
    InvalidDomain(#[from] InvalidDomain),

    /// `issue` was called with no domains.
    #[error("no domain names given; pass at least one domain to put in the certificate")]
    NoDomains,

    /// More domains than one certificate may hold.
    #[error("{count} domain names given, more than the {max} one certificate may hold; split them over several certificates")]
    TooManyDomains {
        /// How many were given.
        count: usize,
        /// The most one order takes.
        max: usize,
    },

    /// The same domain was given twice.
    #[error("{domain} is listed twice; list each domain once")]
    DuplicateDomain {
        /// The repeated name.
        domain: String,
    },

    /// The CA answered with an error, or could not be reached.
    #[error("the ACME server at {directory_url} failed while {action}: {source}; check that it is reachable and read its message")]
    Server {
        /// The CA's directory URL.
        directory_url: String,
        /// What was being done, naming the domain where there is one.
        action: String,
        /// What the CA or the connection reported.
        #[source]
        source: Box<instant_acme::Error>,
    },

    /// The CA tried the HTTP-01 challenge for a domain and it failed.
    #[error("the ACME server could not validate {domain}: {detail}; make sure http://{domain}/.well-known/acme-challenge/ reaches a node proxy that serves the published challenges")]
    ChallengeFailed {
        /// The domain that failed.
        domain: String,
        /// The problem the CA reported.
        detail: String,
    },

    /// The CA does not offer HTTP-01 for a domain.
    #[error("the ACME server offers no HTTP-01 challenge for {domain}; this CA cannot issue a certificate for it over HTTP-01")]
    NoHttpChallenge {
        /// The domain without an HTTP-01 challenge.
        domain: String,
    },

    /// The [`crate::ChallengeSink`] could not publish a challenge answer.
    #[error("publishing the HTTP-01 answer for {domain} failed: {source}; check that the challenge store is reachable")]
    Publish {
        /// The domain whose challenge could not be published.
        domain: String,
        /// What the sink reported.
        #[source]
        source: SinkError,
    },

    /// The CA gave up on the order as a whole.
    #[error("the ACME server refused the order for {domains}: {detail}")]
    OrderFailed {
        /// The ordered domains, comma-separated.
        domains: String,
        /// The problem the CA reported.
        detail: String,
    },

    /// The call ran out of time.
    #[error("no result after {timeout:?} while {action}; try again later, or raise the timeout if the CA or the challenge store is slow")]
    Timeout {
        /// What was being waited for, naming the domains.
        action: String,
        /// The configured timeout.
        timeout: Duration,
    },

    /// Generating the certificate's key pair or signing request failed.
    #[error("generating the certificate key or signing request failed: {0}")]
    KeyGeneration(#[source] rcgen::Error),

    /// The CA returned a certificate chain that cannot be read.
    #[error("the ACME server returned an unusable certificate ({0}); try again, and report it to the CA if it repeats")]
    Certificate(#[from] CertificateError),

    /// The CA returned a certificate for another key than the one requested.
    #[error("the ACME server returned a certificate for another key than the one in the request; try again, and report it to the CA if it repeats")]
    KeyMismatch,
}

/// Why a certificate PEM could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// No `CERTIFICATE` block in the PEM.
    #[error("the PEM holds no CERTIFICATE block; pass the certificate chain as PEM, leaf first")]
    NoCertificate,

    /// The PEM text itself is broken.
    #[error("the PEM cannot be decoded: {0}")]
    Pem(String),

    /// The leaf certificate's DER is not an X.509 certificate this reader understands.
    #[error("the leaf certificate is malformed: {0}")]
    Malformed(&'static str),
}
