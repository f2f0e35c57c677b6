//! Join tokens on the leader: `token.create` records a single-use,
//! expiring token and signs the short-lived credential it carries;
//! `node.join` takes a joining machine's public key, checks the token
//! (known, unused, unexpired, the caller's own), signs the node's
//! credential with the token's trust class and labels, and revokes the
//! token's credential so that it works once.

use crate::drive::Coordinator;
use crate::error::Report;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::members::{JoinTokenRecord, Member};
use reef_proto::node::TrustClass;
use reef_proto::{now_ms, NodeId};
use std::collections::BTreeMap;
use std::time::Duration;

/// The shortest and longest a token may live.
pub(crate) const TTL_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(30 * 24 * 3600);

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorKind::Forbidden, message)
}

/// Why token `record` cannot be used now, if it cannot.
pub(crate) fn token_refusal(record: &JoinTokenRecord, now_ms: u64) -> Option<String> {
    if let Some(node) = record.used_by {
        return Some(format!(
            "join token {} was already used (by node {node}); create another with `reef token create`",
            record.id
        ));
    }
    if now_ms >= record.expires_at_ms {
        return Some(format!(
            "join token {} has expired; create another with `reef token create`",
            record.id
        ));
    }
    None
}

impl Coordinator {
    /// Records a new join token; returns its id, the joining credential
    /// and when it expires.
    /// A server token (`server`) may also join as a server
    /// ([`Coordinator::join_server`]); it is always for a dedicated node.
    pub(crate) async fn create_token(
        &mut self,
        trust: TrustClass,
        labels: BTreeMap<String, String>,
        ttl_ms: u64,
        server: bool,
    ) -> Result<(String, String, u64), ApiError> {
        let invalid = |m: String| ApiError::new(ApiErrorKind::Invalid, m);
        reef_proto::job::validate_labels(&labels).map_err(|e| invalid(format!("label {e}")))?;
        let ttl = Duration::from_millis(ttl_ms);
        if !TTL_RANGE.contains(&ttl) {
            return Err(invalid(format!(
                "a token lives between 1s and 30 days, not {}",
                reef_proto::units::format_duration(ttl)
            )));
        }
        let authority = self.authority()?;
        let id = NodeId::new().to_string();
        let expires_at_ms = now_ms() + ttl_ms;
        let (creds, joiner_key) = authority
            .dir
            .issue_joiner(&id, expires_at_ms / 1000 + 1, server)
            .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?;
        let record = JoinTokenRecord {
            id: id.clone(),
            trust,
            labels,
            expires_at_ms,
            joiner_key,
            used_by: None,
            used_at_ms: None,
            joiner_revoked: false,
        };
        self.store.tokens.create_new(&id, &record).await?;
        tracing::info!(token = %id, trust = ?record.trust, server, "join token created");
        Ok((id, creds.to_string(), expires_at_ms))
    }

    /// Enrolls the machine holding token `token` with its public key;
    /// returns the new node's id and credential.
    pub(crate) async fn join(
        &mut self,
        token: &str,
        public_key: String,
    ) -> Result<(NodeId, String), ApiError> {
        let authority = self.authority()?;
        let Some((mut record, revision)) = self
            .store
            .tokens
            .get(token)
            .await
            .map_err(|e| ApiError::new(ApiErrorKind::Unavailable, e.to_string()))?
        else {
            return Err(refused(format!("no join token {token}")));
        };
        if let Some(why) = token_refusal(&record, now_ms()) {
            return Err(refused(why));
        }
        crate::api::users::check_new_user("node", "viewer", &public_key)
            .map_err(|e| ApiError::new(ApiErrorKind::Invalid, e.to_string()))?;
        let node = NodeId::new();
        let trust = match record.trust {
            TrustClass::Dedicated => reef_trust::NodeTrust::Dedicated,
            TrustClass::Contributed => reef_trust::NodeTrust::Contributed,
        };
        let jwt = authority
            .dir
            .sign_node_key_with_labels(node, trust, &public_key, &record.labels)
            .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?;
        // Used up (compare-and-set: of two racing joins one wins). Its
        // credential is revoked by a later sweep, once this answer has
        // surely reached the node: revoking it now could cut it off first.
        record.used_by = Some(node);
        record.used_at_ms = Some(now_ms());
        if self
            .store
            .tokens
            .put_if(token, &record, revision)
            .await
            .map_err(|e| ApiError::new(ApiErrorKind::Unavailable, e.to_string()))?
            .is_none()
        {
            return Err(refused(format!(
                "join token {token} was just used by another machine"
            )));
        }
        tracing::info!(%node, token, "node joined");
        Ok((node, jwt))
    }

    /// Every few seconds: revokes the credentials of used tokens and
    /// forgets tokens long dead.
    pub(crate) async fn sweep_tokens(&mut self) {
        if self.token_sweep.elapsed() < SWEEP_EVERY {
            return;
        }
        self.token_sweep = std::time::Instant::now();
        let Some(authority) = self.authority.clone() else {
            return;
        };
        let records = match self.store.tokens.all().await {
            Ok(records) => records,
            Err(e) => {
                tracing::debug!(error = %Report(&e), "join tokens not swept");
                return;
            }
        };
        let now = now_ms();
        for mut record in records {
            match sweep(&record, now) {
                Sweep::Keep => {}
                Sweep::RevokeJoiner => {
                    let joiner = Member {
                        name: record.id.clone(),
                        role: "joiner".into(),
                        public_key: record.joiner_key.clone(),
                        added_at_ms: now,
                        revoked_at_s: None,
                    };
                    if let Err(e) = self.revoke(&authority, joiner).await {
                        tracing::warn!(token = %record.id, error = %e.message, "a used join token's credential could not be revoked yet");
                        continue;
                    }
                    record.joiner_revoked = true;
                    if let Err(e) = self.store.tokens.put(&record.id, &record).await {
                        tracing::warn!(token = %record.id, error = %Report(&e), "a used join token could not be marked revoked");
                    }
                }
                Sweep::Forget => {
                    if let Err(e) = self.store.tokens.delete(&record.id).await {
                        tracing::debug!(token = %record.id, error = %Report(&e), "an expired join token could not be deleted yet");
                    }
                }
            }
        }
    }
}

/// How often used and dead tokens are looked at.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// How long after its use a token's credential is revoked.
const REVOKE_AFTER: Duration = Duration::from_secs(5);
/// How long a used or expired token is remembered (so that a late attempt
/// is told why it failed).
const REMEMBER: Duration = Duration::from_secs(24 * 3600);

/// What the sweep does with one token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sweep {
    Keep,
    RevokeJoiner,
    Forget,
}

pub(crate) fn sweep(record: &JoinTokenRecord, now_ms: u64) -> Sweep {
    let ms = |d: Duration| d.as_millis() as u64;
    if let Some(used_at) = record.used_at_ms {
        if !record.joiner_revoked {
            return if now_ms >= used_at + ms(REVOKE_AFTER) {
                Sweep::RevokeJoiner
            } else {
                Sweep::Keep
            };
        }
        if now_ms >= used_at.max(record.expires_at_ms) + ms(REMEMBER) {
            return Sweep::Forget;
        }
        return Sweep::Keep;
    }
    if now_ms >= record.expires_at_ms + ms(REMEMBER) {
        Sweep::Forget
    } else {
        Sweep::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_once_and_until_it_expires() {
        let mut record = JoinTokenRecord {
            id: "t".into(),
            trust: TrustClass::Contributed,
            labels: BTreeMap::new(),
            expires_at_ms: 1_000,
            joiner_key: "U".into(),
            used_by: None,
            used_at_ms: None,
            joiner_revoked: false,
        };
        assert_eq!(token_refusal(&record, 999), None);
        assert!(token_refusal(&record, 1_000).is_some_and(|w| w.contains("expired")));
        let day = 24 * 3600 * 1000;
        assert_eq!(sweep(&record, 1_000), Sweep::Keep);
        assert_eq!(sweep(&record, 1_000 + day), Sweep::Forget);
        record.used_by = Some(NodeId::new());
        record.used_at_ms = Some(500);
        assert!(token_refusal(&record, 0).is_some_and(|w| w.contains("already used")));
        assert_eq!(sweep(&record, 5_499), Sweep::Keep);
        assert_eq!(sweep(&record, 5_500), Sweep::RevokeJoiner);
        record.joiner_revoked = true;
        assert_eq!(sweep(&record, 5_500), Sweep::Keep);
        assert_eq!(sweep(&record, 1_000 + day), Sweep::Forget);
        assert!(TTL_RANGE.contains(&Duration::from_secs(3600)));
        assert!(!TTL_RANGE.contains(&Duration::from_millis(10)));
    }
}
