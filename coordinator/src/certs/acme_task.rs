//! [`Issuer`]: orders one certificate from the ACME CA and stores it. The
//! manager runs each order as a task of its own, a few at a time, so the
//! leader's loop never waits on the CA.
//!
//! The ACME account is created on the first order and its credentials kept
//! in the certificates bucket, encrypted with the cluster key, one account
//! per CA directory; every later order, by this leader or the next, loads it.

use super::bucket;
use super::keys::{self, NewCertificate};
use super::sink::KvChallenges;
use crate::store::{Bucket, Ciphertext, Store, StoreError};
use reef_acme::{Account, AcmeConfig, AcmeError};
use reef_proto::certs::{account_context, acme_account_key, cert_key, CertRecord, CertSource};
use reef_proto::node::NodeRecord;
use reef_secrets::{ClusterKey, SecretsError};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::UNIX_EPOCH;
use tokio::sync::OnceCell;

/// Why an order did not end with a stored certificate.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IssueError {
    /// The CA refused, or could not be reached (its reason is in the message).
    #[error(transparent)]
    Acme(#[from] AcmeError),
    /// Reading or writing the cluster's state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encrypting or sealing the key, or opening the stored account, failed.
    #[error("the certificate key or ACME account could not be encrypted or opened: {0}")]
    Keys(#[from] SecretsError),
    /// The stored account credentials are not text.
    #[error("the stored ACME account credentials are not UTF-8; delete {key} from the certificates bucket to create a new account")]
    AccountText { key: String },
}

/// Everything an order needs; shared by the orders of one term.
pub(crate) struct Issuer {
    pub(crate) certs: Bucket<CertRecord>,
    pub(crate) accounts: Bucket<Ciphertext>,
    pub(crate) nodes: Bucket<NodeRecord>,
    pub(crate) sink: KvChallenges,
    pub(crate) cluster_key: Arc<ClusterKey>,
    pub(crate) config: AcmeConfig,
    account: OnceCell<Account>,
}

impl Issuer {
    pub(crate) fn new(
        store: &Store,
        sink: KvChallenges,
        cluster_key: Arc<ClusterKey>,
        config: AcmeConfig,
    ) -> Self {
        Self {
            certs: store.certs.clone(),
            accounts: store.acme_accounts.clone(),
            nodes: store.nodes.clone(),
            sink,
            cluster_key,
            config,
            account: OnceCell::new(),
        }
    }

    /// Orders a certificate for `domain` and stores it, sealed to every
    /// registered node. Returns when it is stored.
    pub(crate) async fn issue(&self, domain: &str) -> Result<(), IssueError> {
        let account = self
            .account
            .get_or_try_init(|| self.load_or_create_account())
            .await?;
        let issued = account.issue(&[domain.to_string()], &self.sink).await?;
        let nodes = bucket::node_keys(&self.nodes).await?;
        let millis = |t: std::time::SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        };
        let record = keys::record(
            NewCertificate {
                domains: issued.domains.clone(),
                chain_pem: issued.chain_pem.clone(),
                key_pem: issued.key_pem.as_bytes(),
                not_before_ms: millis(issued.not_before),
                not_after_ms: millis(issued.not_after),
                source: CertSource::Acme,
            },
            &self.cluster_key,
            &nodes,
        )?;
        self.certs.replace(&cert_key(domain), &record).await?;
        tracing::info!(%domain, nodes = nodes.len(), "certificate stored");
        Ok(())
    }

    /// The bucket key of this CA's account.
    fn account_key(&self) -> String {
        let digest = Sha256::digest(self.config.directory_url.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        acme_account_key(&hex)
    }

    /// Loads the stored account for this CA, or creates and stores one. Two
    /// leaders racing to create store only one: the loser loads the winner's.
    async fn load_or_create_account(&self) -> Result<Account, IssueError> {
        let key = self.account_key();
        let context = account_context(&self.config.directory_url);
        if let Some(account) = self.load_account(&key, &context).await? {
            return Ok(account);
        }
        let (account, credentials) = Account::create(&self.config).await?;
        let sealed = self.cluster_key.encrypt(&context, credentials.as_bytes())?;
        match self.accounts.create(&key, &Ciphertext(sealed)).await? {
            Some(_) => {
                tracing::info!(directory = %self.config.directory_url, "ACME account stored");
                Ok(account)
            }
            // Another leader stored one first: use that one.
            None => match self.load_account(&key, &context).await? {
                Some(account) => Ok(account),
                None => Ok(account),
            },
        }
    }

    async fn load_account(&self, key: &str, context: &str) -> Result<Option<Account>, IssueError> {
        let Some((stored, _)) = self.accounts.get(key).await? else {
            return Ok(None);
        };
        let credentials = self.cluster_key.decrypt(context, &stored.0)?;
        let text = std::str::from_utf8(&credentials).map_err(|_| IssueError::AccountText {
            key: key.to_string(),
        })?;
        Ok(Some(Account::load(&self.config, text).await?))
    }
}
