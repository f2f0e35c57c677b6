//! The certificate API: `cert.add` (from files), `cert.list` and
//! `cert.remove`. The key of an added certificate arrives in the request
//! (which is why the NATS connection must be TLS in production, as for
//! secrets), is checked, encrypted and sealed here, and dropped from memory.

use super::bucket;
use super::check::check_file_certificate;
use super::keys::{self, NewCertificate, NodeKeys};
use crate::api::invalid;
use crate::drive::Coordinator;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::certs::{cert_key, CertRecord, CertSource, CertStatus};
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

    /// Every stored certificate, and every domain an app wants that has none yet.
    pub(crate) async fn list_certificates(&self) -> Result<Vec<CertStatus>, ApiError> {
        let stored = bucket::read_all(&self.store.certs).await?;
        let domains = self.certs.domains();
        let mut out: Vec<CertStatus> = stored
            .iter()
            .map(|s| {
                let error = domains
                    .get(s.record.primary())
                    .and_then(|d| d.last_error.clone());
                status_of(&s.record, error)
            })
            .collect();
        for (domain, status) in domains {
            if !stored.iter().any(|s| s.record.covers(&domain)) {
                out.push(CertStatus {
                    domains: vec![domain],
                    source: CertSource::Acme,
                    not_after_ms: None,
                    nodes: 0,
                    last_error: status.last_error,
                });
            }
        }
        out.sort_by(|a, b| a.domains.cmp(&b.domains));
        Ok(out)
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
