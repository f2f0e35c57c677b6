//! Credential holders: signing a new user's credential for a key the
//! user made, listing holders, and revoking users and removed nodes. A
//! revocation goes into the reef account's JWT, which the operator key
//! signs again and the system account pushes to the servers; they then
//! disconnect the holder and refuse it from then on.

use crate::api::invalid;
use crate::drive::Coordinator;
use crate::error::Report;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::members::{self, Member};
use reef_proto::roles::Role;
use reef_proto::{now_ms, subjects, NodeId};
use std::time::Duration;

/// How long the servers get to take an account update.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

fn unavailable(message: impl Into<String>) -> ApiError {
    ApiError::new(ApiErrorKind::Unavailable, message)
}

/// Why a new user's credential is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NewUserRefusal {
    /// The name or role does not parse (the message says why).
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{0} credentials are not issued to users: choose admin, deployer, submitter or viewer"
    )]
    NotAUserRole(Role),
    #[error("{0:?} is not a user's public nkey (U...)")]
    NotAUserKey(String),
}

/// A new user's role, if `name`, `role` and `public_key` can make one.
pub(crate) fn check_new_user(
    name: &str,
    role: &str,
    public_key: &str,
) -> Result<Role, NewUserRefusal> {
    reef_proto::roles::valid_user_name(name).map_err(NewUserRefusal::Invalid)?;
    let role = Role::parse(role).map_err(NewUserRefusal::Invalid)?;
    if !Role::USERS.contains(&role) {
        return Err(NewUserRefusal::NotAUserRole(role));
    }
    let is_user_key = public_key.len() == 56
        && public_key.starts_with('U')
        && public_key
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c));
    if !is_user_key {
        return Err(NewUserRefusal::NotAUserKey(public_key.to_string()));
    }
    Ok(role)
}

impl Coordinator {
    pub(crate) fn authority(&self) -> Result<std::sync::Arc<crate::Authority>, ApiError> {
        self.authority.clone().ok_or_else(|| {
            unavailable(
                "this coordinator holds no cluster keys: start it with --cluster-dir DIR \
                 (the directory `reef cluster init` made) to issue and revoke credentials",
            )
        })
    }

    /// Signs a credential for a new user; returns its JWT.
    pub(crate) async fn add_user(
        &mut self,
        name: String,
        role: String,
        public_key: String,
    ) -> Result<String, ApiError> {
        let role = check_new_user(&name, &role, &public_key).map_err(|e| invalid(e.to_string()))?;
        let authority = self.authority()?;
        let key = Member::key_for(role.as_str(), &name);
        if let Some((known, _)) = self.store.members.get(&key).await? {
            if known.revoked_at_s.is_none() {
                return Err(invalid(format!(
                    "user {name} exists (a {}); remove it first with `reef user rm {name}`",
                    known.role
                )));
            }
        }
        let jwt = authority
            .dir
            .sign_user_key(role, &name, &public_key)
            .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?;
        let member = Member {
            name,
            role: role.to_string(),
            public_key,
            added_at_ms: now_ms(),
            revoked_at_s: None,
        };
        self.put_member(&member).await?;
        tracing::info!(user = %member.name, role = %member.role, "user added");
        Ok(jwt)
    }

    /// Every user holder, revoked ones too.
    pub(crate) async fn list_users(&self) -> Result<Vec<Member>, ApiError> {
        let mut users: Vec<Member> = self
            .store
            .members
            .all()
            .await?
            .into_iter()
            .filter(|m| m.role != "node" && m.role != reef_proto::members::APP_ROLE)
            .collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    /// Revokes user `name`'s credential.
    pub(crate) async fn remove_user(&mut self, name: &str) -> Result<(), ApiError> {
        let authority = self.authority()?;
        let users = self.list_users().await?;
        let Some(user) = users
            .into_iter()
            .find(|m| m.name == name && m.revoked_at_s.is_none())
        else {
            return Err(ApiError::new(
                ApiErrorKind::NotFound,
                format!("no user {name} (see `reef user list`)"),
            ));
        };
        self.revoke(&authority, user).await?;
        tracing::info!(user = %name, "user revoked");
        // Nothing runs in a removed user's name from now on.
        let removed = self.remove_crons_of(name).await?;
        if !removed.is_empty() {
            tracing::info!(user = %name, crons = ?removed, "the user's periodic jobs were removed with it");
        }
        Ok(())
    }

    /// Remembers the key node `node` registered with, so that removing the
    /// node can revoke it.
    pub(crate) async fn note_node_key(&mut self, node: NodeId, public_key: String) {
        let key = Member::key_for("node", &node.to_string());
        match self.store.members.get(&key).await {
            Ok(Some((known, _))) if known.public_key == public_key => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%node, error = %Report(&e), "could not read the node's credential record");
                return;
            }
        }
        let member = Member {
            name: node.to_string(),
            role: "node".into(),
            public_key,
            added_at_ms: now_ms(),
            revoked_at_s: None,
        };
        if let Err(e) = self.put_member(&member).await {
            tracing::warn!(%node, error = %e.message, "could not record the node's credential");
        }
    }

    /// Revokes node `node`'s credential, if it registered with one.
    pub(crate) async fn revoke_node(&mut self, node: NodeId) -> Result<(), ApiError> {
        let key = Member::key_for("node", &node.to_string());
        let Some((member, _)) = self.store.members.get(&key).await? else {
            return Ok(());
        };
        if member.revoked_at_s.is_some() {
            return Ok(());
        }
        let Some(authority) = self.authority.clone() else {
            tracing::warn!(%node, "the removed node's credential is not revoked: this coordinator holds no cluster keys (--cluster-dir)");
            return Ok(());
        };
        self.revoke(&authority, member).await?;
        tracing::info!(%node, "node credential revoked");
        Ok(())
    }

    async fn put_member(&self, member: &Member) -> Result<(), ApiError> {
        self.store.members.put(&member.key(), member).await?;
        Ok(())
    }

    /// Records `member` as revoked now and pushes the account's new
    /// revocation list to the servers.
    pub(crate) async fn revoke(
        &self,
        authority: &crate::Authority,
        mut member: Member,
    ) -> Result<(), ApiError> {
        let now_s = now_ms() / 1000;
        member.revoked_at_s = Some(now_s);
        self.put_member(&member).await?;
        let all = self.store.members.all().await?;
        let list = members::revocations(&all);
        let jwt = authority
            .dir
            .account_jwt(&list)
            .map_err(|e| ApiError::new(ApiErrorKind::Internal, e.to_string()))?;
        push_account(&authority.system, jwt).await
    }
}

/// Sends a new account JWT to the servers and checks one took it.
async fn push_account(system: &async_nats::Client, jwt: String) -> Result<(), ApiError> {
    let reply = tokio::time::timeout(
        PUSH_TIMEOUT,
        system.request(subjects::CLAIMS_UPDATE, jwt.into()),
    )
    .await
    .map_err(|_| unavailable("no NATS server took the account update in time"))?
    .map_err(|e| unavailable(format!("the account update was not sent: {e}")))?;
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload)
        .map_err(|_| unavailable("the NATS server's answer to the account update is not JSON"))?;
    if answer["data"]["code"] == 200 {
        return Ok(());
    }
    Err(unavailable(format!(
        "the NATS server refused the account update: {}",
        answer["error"]["description"]
            .as_str()
            .unwrap_or(&answer.to_string())
    )))
}

#[cfg(test)]
mod tests {
    use super::check_new_user;
    use reef_proto::roles::Role;

    #[test]
    fn new_users_need_a_name_a_user_role_and_a_user_key() {
        let key = "UCXHQFH6DC3MQSFT4WOFHAE34QYWKEN6NMZFM6HPGVUDS4IZW6MQRJ6D";
        assert_eq!(check_new_user("ops", "viewer", key), Ok(Role::Viewer));
        assert!(check_new_user("Ops", "viewer", key).is_err());
        assert!(check_new_user("ops", "root", key).is_err());
        let err = check_new_user("ops", "node", key)
            .expect_err("not for users")
            .to_string();
        assert!(err.contains("not issued to users"), "{err}");
        let err = check_new_user("ops", "admin", "ADXYZ")
            .expect_err("an account key")
            .to_string();
        assert!(err.contains("not a user's public nkey"), "{err}");
        assert!(check_new_user("ops", "admin", &key.to_lowercase()).is_err());
    }
}
