//! TLS certificates held by the cluster, and the ACME HTTP-01 challenge
//! answers published while one is ordered.
//!
//! A [`CertRecord`] lives in the certificates bucket under its primary
//! domain ([`cert_key`]). Its private key is never stored in the clear: it is
//! encrypted with the cluster key for the coordinators (so they can seal it
//! again for nodes that join later), and sealed to each node's X25519 key for
//! the nodes, which open it in memory and serve it. The ACME account's
//! credentials share the bucket under [`acme_account_key`], encrypted with the
//! cluster key; they are not a [`CertRecord`] ([`is_cert_key`] tells them apart).
//!
//! An [`AcmeChallenge`] lives in the challenges bucket under its token while
//! the CA validates it; every node proxy answers it on plain HTTP.

use crate::envelope::{Message, MessageKind};
use crate::ids::NodeId;
use crate::manifest::validate_domain;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a certificate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertSource {
    /// Ordered by the leader from the ACME CA, and renewed by it.
    Acme,
    /// Given by an operator with `reef certs add`; never renewed by reef.
    File,
}

impl CertSource {
    pub fn name(self) -> &'static str {
        match self {
            CertSource::Acme => "acme",
            CertSource::File => "file",
        }
    }
}

/// A certificate and its key, as the cluster stores it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// The names it is served for; the first is the primary one, its key in the bucket.
    pub domains: Vec<String>,
    /// The certificate chain as PEM, leaf first.
    pub chain_pem: String,
    pub not_before_ms: u64,
    pub not_after_ms: u64,
    pub source: CertSource,
    /// The private key (PEM) encrypted with the cluster key, bound to
    /// [`key_context`]: only coordinators can read it.
    pub stored_key: Vec<u8>,
    /// The private key sealed to each registered node's key, bound to
    /// [`key_context`]; the leader adds nodes that register later.
    pub sealed_keys: BTreeMap<NodeId, Vec<u8>>,
    pub updated_at_ms: u64,
}

impl CertRecord {
    /// The primary domain (the bucket key is derived from it).
    pub fn primary(&self) -> &str {
        self.domains.first().map_or("", String::as_str)
    }

    /// Whether the certificate is served for `domain`: listed exactly, or
    /// under a listed one-level wildcard (`*.example.com` covers `a.example.com`).
    pub fn covers(&self, domain: &str) -> bool {
        self.domains.iter().any(|name| covers(name, domain))
    }
}

/// Whether certificate name `name` (exact or `*.parent`) covers `domain`.
pub fn covers(name: &str, domain: &str) -> bool {
    if name == domain {
        return true;
    }
    match (name.strip_prefix("*."), domain.split_once('.')) {
        (Some(parent), Some((_, rest))) => parent == rest,
        _ => false,
    }
}

impl std::fmt::Debug for CertRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertRecord")
            .field("domains", &self.domains)
            .field("source", &self.source)
            .field("not_after_ms", &self.not_after_ms)
            .field("sealed_for", &self.sealed_keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Message for CertRecord {
    const KIND: MessageKind = MessageKind::CertRecord;
}

/// One HTTP-01 challenge answer: `GET /.well-known/acme-challenge/{token}`
/// is answered with `key_authorization`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeChallenge {
    pub token: String,
    pub key_authorization: String,
    pub published_at_ms: u64,
}

impl Message for AcmeChallenge {
    const KIND: MessageKind = MessageKind::AcmeChallenge;
}

/// A certificate as `reef certs list` shows it: a stored one, or a domain
/// the leader wants a certificate for and has none yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertStatus {
    pub domains: Vec<String>,
    pub source: CertSource,
    /// None while no certificate has been obtained.
    pub not_after_ms: Option<u64>,
    /// How many nodes it is sealed to.
    pub nodes: u32,
    /// The last failure to obtain or renew it, from the CA or the cluster.
    pub last_error: Option<String>,
}

/// The bucket key of a certificate whose primary domain is `domain`: the
/// domain itself, with a leading wildcard `*` written `_` (KV keys cannot
/// hold `*`; host names never hold `_`).
pub fn cert_key(domain: &str) -> String {
    match domain.strip_prefix('*') {
        Some(rest) => format!("_{rest}"),
        None => domain.to_string(),
    }
}

/// Prefix of the ACME account entries in the certificates bucket.
const ACCOUNT_PREFIX: &str = "_acme-account.";

/// The bucket key of the ACME account at the CA whose directory has this
/// `digest` (hex, e.g. a truncated sha256 of the directory URL): one account
/// per CA, so switching CAs does not reuse another CA's credentials.
pub fn acme_account_key(digest: &str) -> String {
    format!("{ACCOUNT_PREFIX}{digest}")
}

/// Prefix of the failed-order entries in the certificates bucket.
const ATTEMPTS_PREFIX: &str = "_acme-attempts.";

/// The bucket key of the failed ACME orders for `domain`.
pub fn acme_attempts_key(domain: &str) -> String {
    format!("{ATTEMPTS_PREFIX}{}", cert_key(domain))
}

/// Whether a key of the certificates bucket holds [`AcmeAttempts`].
pub fn is_attempts_key(key: &str) -> bool {
    key.starts_with(ATTEMPTS_PREFIX)
}

/// Whether a key of the certificates bucket holds a [`CertRecord`].
pub fn is_cert_key(key: &str) -> bool {
    !key.starts_with(ACCOUNT_PREFIX) && !is_attempts_key(key)
}

/// The ACME orders for one domain that failed in a row, kept in the
/// certificates bucket (under [`acme_attempts_key`]) so that a new leader
/// waits out the same backoff instead of ordering again at once: CAs limit
/// failed validations (Let's Encrypt: 5 per hostname an hour). Deleted when
/// an order succeeds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAttempts {
    pub domain: String,
    /// Failed orders in a row.
    pub failures: u32,
    /// The last failure, from the CA or the cluster.
    pub last_error: String,
    /// No new order before this (wall clock, ms since the epoch).
    pub retry_at_ms: u64,
}

impl Message for AcmeAttempts {
    const KIND: MessageKind = MessageKind::AcmeAttempts;
}

/// The context a certificate's private key is bound to when encrypted or
/// sealed. No secret context (`app/KEY`) has this shape.
pub fn key_context(primary: &str) -> String {
    format!("reef-tls-key:{primary}")
}

/// The context the ACME account credentials are bound to.
pub fn account_context(directory_url: &str) -> String {
    format!("reef-acme-account:{directory_url}")
}

/// Checks a name a certificate may be added for: a host name, or `*.`
/// followed by a host name of at least two labels.
pub fn validate_cert_domain(domain: &str) -> Result<(), String> {
    let (host, wildcard) = match domain.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (domain, false),
    };
    validate_domain(host)?;
    if wildcard && host.split('.').count() < 2 {
        return Err(format!(
            "{domain:?} would cover a whole top-level domain; use *.example.com or narrower"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
