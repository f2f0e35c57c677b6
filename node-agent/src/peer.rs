//! Node-to-node forwarding, this node's side: its own key and certificate
//! for the peer links, and the peer listener other nodes forward to.
//!
//! The key is made here on first start (`<data-dir>/tls/peer-key.pem`,
//! 0600) and never leaves the machine; the coordinator signs a certificate
//! for its public half, naming the node ([`reef_proto::node::peer_name`]),
//! valid for 30 days. It is kept in `<data-dir>/tls/peer-cert.json`, so a
//! restart while no coordinator answers still serves and forwards, and a new
//! one is asked for when ten days are left. Until the first one arrives the
//! peer listener refuses every handshake and nothing is forwarded.
//!
//! Only dedicated nodes take part: a contributed node runs no app instance
//! and is given no routes.

use crate::{Agent, AgentError, Config};
use reef_proto::api::{ApiRequest, ApiResponse};
use reef_proto::{now_ms, NodeId};
use reef_proxy::PeerTls;
use reef_trust::files::{self, Mode};
use reef_trust::pki::PeerKey;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A new certificate is asked for once this little of the old one is left.
const RENEW_BEFORE_MS: u64 = 10 * 24 * 3600 * 1000;

/// Between failed requests: from the first to the longest wait.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// The longest sleep between two looks at the certificate's age (the clock
/// may jump; a day's drift is harmless with ten days to spare).
const CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The largest `peer-cert.json` read.
const MAX_STORED: u64 = 64 * 1024;

/// A certificate the coordinator issued, as kept on disk.
#[derive(Debug, Serialize, Deserialize)]
struct StoredCert {
    cert_pem: String,
    not_after_ms: u64,
}

/// This node's side of the peer links.
pub(crate) struct Peer {
    pub(crate) tls: PeerTls,
    key: PeerKey,
    /// The node's peer name.
    name: String,
    dir: PathBuf,
    /// When the certificate in use stops being valid (0: none yet).
    not_after_ms: u64,
}

/// Whether a certificate valid until `not_after_ms` should be replaced at
/// `now_ms` (none at all counts as due).
pub(crate) fn renewal_due(now_ms: u64, not_after_ms: u64) -> bool {
    now_ms.saturating_add(RENEW_BEFORE_MS) >= not_after_ms
}

/// How long to wait after `failures` failed requests in a row.
pub(crate) fn retry_delay(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(RETRY_MAX)
}

impl Peer {
    /// The peer links of node `node`, with the key from the data dir (made
    /// on first start) and the certificate kept there if it is still good.
    /// None when the node takes no part: contributed, no peer listener, or
    /// no cluster CA to check the other nodes with.
    pub(crate) fn prepare(config: &Config, node: NodeId) -> Result<Option<Peer>, AgentError> {
        if config.trust == reef_proto::node::TrustClass::Contributed || config.peer.is_none() {
            return Ok(None);
        }
        let Some(ca) = &config.cluster_ca else {
            tracing::warn!(
                "no cluster CA (--nats-ca): no node-to-node listener, and nothing is forwarded"
            );
            return Ok(None);
        };
        let dir = config.data_dir.join("tls");
        let fail = |path: &Path, reason: String| AgentError::DataDir {
            path: path.to_path_buf(),
            reason,
        };
        let tls = PeerTls::new(ca).map_err(|e| AgentError::Config(format!("cluster CA: {e}")))?;
        let key_path = dir.join("peer-key.pem");
        let key = match key_path.exists() {
            true => {
                let pem = files::read_private(&key_path, MAX_STORED)
                    .map_err(|e| fail(&key_path, e.to_string()))?;
                PeerKey::from_pem(&pem).map_err(|e| fail(&key_path, e.to_string()))?
            }
            false => {
                let key = PeerKey::generate().map_err(|e| fail(&key_path, e.to_string()))?;
                files::write(&key_path, key.to_pem().as_bytes(), Mode::Private)
                    .map_err(|e| fail(&key_path, e.to_string()))?;
                key
            }
        };
        let mut peer = Peer {
            tls,
            key,
            name: reef_proto::node::peer_name(node),
            dir,
            not_after_ms: 0,
        };
        match peer.stored() {
            Ok(Some(stored)) => {
                peer.install(&stored);
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(error = %why, "the kept node certificate is unusable; asking for a new one")
            }
        }
        Ok(Some(peer))
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("peer-cert.json")
    }

    /// The kept certificate, if there is one that has not expired.
    fn stored(&self) -> Result<Option<StoredCert>, String> {
        let path = self.cert_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = files::read(&path, MAX_STORED).map_err(|e| e.to_string())?;
        let stored: StoredCert =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((stored.not_after_ms > now_ms()).then_some(stored))
    }

    /// Presents `cert` from now on; false (logged) if it does not fit the key.
    fn install(&mut self, cert: &StoredCert) -> bool {
        match self
            .tls
            .set_identity(&self.name, &cert.cert_pem, self.key.to_pem().as_bytes())
        {
            Ok(()) => {
                self.not_after_ms = cert.not_after_ms;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "the node certificate does not fit this node");
                false
            }
        }
    }

    /// Asks a coordinator for a certificate for this node's key.
    async fn ask(&self, agent: &Agent) -> Result<StoredCert, String> {
        let request = ApiRequest::NodeCertificate {
            public_key: self.key.public_key(),
        };
        match agent.call(&request).await.map_err(|e| e.to_string())? {
            ApiResponse::NodeCertificate {
                cert_pem,
                not_after_ms,
            } => Ok(StoredCert {
                cert_pem,
                not_after_ms,
            }),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// Gets, installs and keeps a new certificate; retries until one fits
    /// or shutdown. False on shutdown. Only a registered node is given one,
    /// so the first request waits for the registration.
    async fn renew(&mut self, agent: &Agent) -> bool {
        let mut registered = agent.registered.subscribe();
        tokio::select! {
            () = agent.shutdown.cancelled() => return false,
            seen = registered.wait_for(|done| *done) => if seen.is_err() { return false },
        }
        let mut failures = 0;
        loop {
            match self.ask(agent).await {
                Ok(cert) if self.install(&cert) => {
                    let json = serde_json::to_vec(&cert).unwrap_or_default();
                    if let Err(e) = files::write(&self.cert_path(), &json, Mode::Public) {
                        tracing::warn!(error = %e, "could not keep the node certificate");
                    }
                    tracing::info!(name = %self.name, "node certificate installed");
                    return true;
                }
                Ok(_) => {}
                Err(why) if failures == 0 => {
                    tracing::info!(error = %why, "no node certificate yet; asking again")
                }
                Err(why) => tracing::debug!(error = %why, "no node certificate yet"),
            }
            let wait = retry_delay(failures);
            failures = failures.saturating_add(1);
            tokio::select! {
                () = agent.shutdown.cancelled() => return false,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Keeps the certificate fresh until shutdown.
    async fn keep_fresh(mut self, agent: Arc<Agent>) {
        loop {
            if renewal_due(now_ms(), self.not_after_ms) && !self.renew(&agent).await {
                return;
            }
            let left = self
                .not_after_ms
                .saturating_sub(RENEW_BEFORE_MS)
                .saturating_sub(now_ms());
            let wait = Duration::from_millis(left).min(CHECK_EVERY);
            tokio::select! {
                () = agent.shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Starts, as tracked tasks that end on shutdown: keeping the node's
/// certificate fresh, and the peer listener on `listener`.
pub(crate) fn start(
    agent: &Arc<Agent>,
    peer: Peer,
    listener: TcpListener,
    config: reef_proxy::ProxyConfig,
) {
    agent.tasks.spawn(peer.keep_fresh(agent.clone()));
    tracing::info!(addr = ?listener.local_addr().ok(), "node-to-node listener");
    let serving = reef_proxy::serve_peer(
        listener,
        agent.router.clone(),
        config,
        agent.shutdown.clone(),
    );
    agent.tasks.spawn(async move {
        if let Err(e) = serving.await {
            tracing::warn!(error = %e, "node-to-node listener stopped with an error");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_renewed_with_ten_days_left() {
        let day = 24 * 3600 * 1000;
        assert!(renewal_due(5, 0), "none yet");
        assert!(!renewal_due(0, 30 * day));
        assert!(!renewal_due(19 * day, 30 * day));
        assert!(renewal_due(20 * day, 30 * day));
        assert!(renewal_due(31 * day, 30 * day));
        assert!(renewal_due(u64::MAX, 30 * day));
    }

    #[test]
    fn retries_back_off_up_to_a_bound() {
        assert_eq!(retry_delay(0), RETRY_FIRST);
        assert_eq!(retry_delay(1), RETRY_FIRST * 2);
        assert_eq!(retry_delay(30), RETRY_MAX);
        assert!((0..40).map(retry_delay).all(|d| d <= RETRY_MAX));
    }
}
