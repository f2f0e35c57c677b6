//! The cluster's certificates, served by this node's HTTPS listener. Each
//! record's private key is opened in memory with the node key (the copy
//! sealed to this node); nothing is written to disk. A name listed by
//! several certificates is served with the one whose primary domain it is,
//! else with the first by bucket key, and falls back to another when that
//! one goes.

use super::follow::{Change, Follower};
use reef_proto::certs::{cert_key, is_cert_key, key_context, CertRecord};
use reef_proto::NodeId;
use reef_secrets::{SecretsError, Zeroizing};
use std::collections::BTreeMap;

/// Opens what was sealed to this node.
pub(crate) trait Opener {
    fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretsError>;
}

impl Opener for reef_secrets::NodeKey {
    fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        reef_secrets::NodeKey::open(self, context, sealed)
    }
}

/// One certificate this node can serve.
struct Usable {
    revision: u64,
    domains: Vec<String>,
    chain_pem: String,
    key_pem: Zeroizing<Vec<u8>>,
}

/// Keeps the HTTPS listener's certificates in step with the certificates bucket.
pub(crate) struct CertFollower<K> {
    node: NodeId,
    opener: K,
    certs: reef_proxy::Certificates,
    /// By bucket key.
    usable: BTreeMap<String, Usable>,
    /// What the listener serves: domain → (bucket key, revision).
    served: BTreeMap<String, (String, u64)>,
}

impl<K: Opener> CertFollower<K> {
    pub(crate) fn new(node: NodeId, opener: K, certs: reef_proxy::Certificates) -> Self {
        Self {
            node,
            opener,
            certs,
            usable: BTreeMap::new(),
            served: BTreeMap::new(),
        }
    }

    /// The record's certificate with its key opened, if it is sealed to this node.
    fn open(&self, key: &str, value: &[u8], revision: u64) -> Option<Usable> {
        let record = match reef_proto::decode::<CertRecord>(value) {
            Ok(record) if cert_key(record.primary()) == key => record,
            Ok(_) => {
                tracing::warn!(%key, "ignoring a certificate stored under another name");
                return None;
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "ignoring a malformed certificate");
                return None;
            }
        };
        let Some(sealed) = record.sealed_keys.get(&self.node) else {
            tracing::info!(%key, "certificate not sealed for this node yet; the leader adds it");
            return None;
        };
        match self.opener.open(&key_context(record.primary()), sealed) {
            Ok(key_pem) => Some(Usable {
                revision,
                domains: record.domains,
                chain_pem: record.chain_pem,
                key_pem,
            }),
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot open the certificate's key with this node's key");
                None
            }
        }
    }

    /// Serves each name with its chosen certificate, and stops serving names
    /// no certificate lists any more.
    fn resolve(&mut self) {
        let mut wanted: BTreeMap<&str, &str> = BTreeMap::new();
        for (key, usable) in &self.usable {
            for domain in &usable.domains {
                // Keys are visited in order: the first one keeps a name
                // unless the name's own certificate comes later.
                if cert_key(domain) == *key || !wanted.contains_key(domain.as_str()) {
                    wanted.insert(domain, key);
                }
            }
        }
        let gone: Vec<String> = self
            .served
            .keys()
            .filter(|d| !wanted.contains_key(d.as_str()))
            .cloned()
            .collect();
        for domain in gone {
            self.certs.remove(&domain);
            self.served.remove(&domain);
            tracing::info!(%domain, "no longer serving a certificate");
        }
        for (domain, key) in wanted {
            let usable = &self.usable[key];
            let current = (key.to_string(), usable.revision);
            if self.served.get(domain) == Some(&current) {
                continue;
            }
            match self
                .certs
                .set(domain, &usable.chain_pem, usable.key_pem.as_slice())
            {
                Ok(()) => {
                    tracing::info!(%domain, certificate = %key, "serving a certificate");
                    self.served.insert(domain.to_string(), current);
                }
                Err(e) => {
                    tracing::warn!(%domain, certificate = %key, error = %e, "cannot serve the certificate");
                    if self.served.remove(domain).is_some() {
                        self.certs.remove(domain);
                    }
                }
            }
        }
    }
}

impl<K: Opener> Follower for CertFollower<K> {
    fn apply(&mut self, key: &str, change: Change<'_>) {
        if !is_cert_key(key) {
            return;
        }
        let usable = match change {
            Change::Put { revision, value } => self.open(key, value, revision),
            Change::Removed => None,
        };
        match usable {
            Some(usable) => self.usable.insert(key.to_string(), usable),
            None => self.usable.remove(key),
        };
        self.resolve();
    }
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
