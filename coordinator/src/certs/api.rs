//! The certificate API: `cert.add` (from files), `cert.list` and
//! `cert.remove`. The key of an added certificate arrives in the request
//! (which is why the NATS connection must be TLS in production, as for
//! secrets), is checked, encrypted and sealed here, and dropped from memory.

use super::bucket;
use super::check::check_file_certificate;
use super::keys::{self, NewCertificate, NodeKeys};
use crate::api::invalid;
use crate::drive::Coordinator;
use crate::error::CoordinatorError;
use crate::store::Store;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::certs::{cert_key, is_attempts_key, CertRecord, CertSource, CertStatus};
use std::collections::BTreeMap;
use std::time::SystemTime;

fn status_of(record: &CertRecord, last_error: Option<String>) -> CertStatus {
    CertStatus {
        domains: record.domains.clone(),
        source: record.source,
        not_after_ms: Some(record.not_after_ms),
        nodes: record.sealed_keys.len() as u32,
        last_error,
    }
}

/// Every stored certificate, and, with ACME on, every domain an app wants
/// that has none yet, with the last failed order's reason: read from KV,
/// so any coordinator answers it.
pub(crate) async fn list(store: &Store, acme: bool) -> Result<Vec<CertStatus>, CoordinatorError> {
    let stored = bucket::read_all(&store.certs).await?;
    let attempts = store
        .acme_attempts
        .keys()
        .await?
        .into_iter()
        .filter(|k| is_attempts_key(k));
    let failures: BTreeMap<String, String> = store
        .acme_attempts
        .read_many(attempts)
        .await?
        .into_iter()
        .map(|(_, a, _)| (a.domain, a.last_error))
        .collect();
    let mut out: Vec<CertStatus> = stored
        .iter()
        .map(|s| status_of(&s.record, failures.get(s.record.primary()).cloned()))
        .collect();
    if acme {
        for domain in super::wanted(store).await?.into_keys() {
            if stored.iter().any(|s| s.record.covers(&domain)) {
                continue;
            }
            let last_error = failures.get(&domain).cloned().or_else(|| {
                reef_acme::validate_domain(&domain)
                    .err()
                    .map(|e| format!("cannot be ordered over ACME: {e}"))
            });
            out.push(CertStatus {
                domains: vec![domain],
                source: CertSource::Acme,
                not_after_ms: None,
                nodes: 0,
                last_error,
            });
        }
    }
    out.sort_by(|a, b| a.domains.cmp(&b.domains));
    Ok(out)
}

impl Coordinator {
    fn cert_cluster_key(&self) -> Result<&reef_secrets::ClusterKey, ApiError> {
        self.cluster_key.as_deref().ok_or_else(|| {
            ApiError::new(
                ApiErrorKind::Unavailable,
                "this coordinator has no cluster key to encrypt certificate keys with (start it with --secrets-key FILE)",
            )
        })
    }

    pub(crate) async fn add_certificate(
        &mut self,
        domains: Vec<String>,
        chain_pem: String,
        key_pem: &[u8],
    ) -> Result<CertStatus, ApiError> {
        let checked = check_file_certificate(&domains, &chain_pem, key_pem, SystemTime::now())
            .map_err(|e| invalid(e.to_string()))?;
        let nodes: NodeKeys = self
            .cluster
            .nodes()
            .filter(|entry| entry.record.trust == reef_proto::node::TrustClass::Dedicated)
            .map(|entry| (entry.record.id, entry.record.sealing_key))
            .collect();
        let key = cert_key(&domains[0]);
        let record = keys::record(
            NewCertificate {
                domains,
                chain_pem,
                key_pem,
                not_before_ms: checked.not_before_ms(),
                not_after_ms: checked.not_after_ms(),
                source: CertSource::File,
            },
            self.cert_cluster_key()?,
            &nodes,
        )
        .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?;
        self.store.certs.replace(&key, &record).await?;
        tracing::info!(domains = ?record.domains, nodes = nodes.len(), "certificate added from files");
        self.certs.nudge();
        Ok(status_of(&record, None))
    }

    /// Forgets the certificate whose primary domain is `domain`. An app that
    /// still lists it gets a new one ordered if ACME is on.
    pub(crate) async fn remove_certificate(&mut self, domain: &str) -> Result<(), ApiError> {
        let key = cert_key(domain);
        let not_found = || {
            ApiError::new(
                ApiErrorKind::NotFound,
                format!("no certificate has {domain} as its primary domain (see reef certs list)"),
            )
        };
        reef_proto::certs::validate_cert_domain(domain).map_err(invalid)?;
        let (_, revision) = self.store.certs.get(&key).await?.ok_or_else(not_found)?;
        self.store.certs.purge_if(&key, revision).await?;
        tracing::info!(%domain, "certificate removed");
        self.certs.nudge();
        Ok(())
    }
}
