//! What a credential says about its holder: read from the user JWT of a
//! `.creds` file. A process uses it to name itself (its API subjects and
//! inbox); the NATS server, which verified the JWT, holds it to that.

use crate::jwt::{self, User};
use crate::permissions::NodeTrust;
use crate::{creds, TrustError};
use reef_proto::roles::Role;
use reef_proto::NodeId;

/// The holder of a credential.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub role: Role,
    /// The user's name, or the node's id.
    pub name: String,
    /// For nodes: the id and trust class their credential was issued for.
    pub node: Option<(NodeId, NodeTrust)>,
    /// The account that issued it (through a signing key).
    pub account: String,
    /// The key that signed it.
    pub issuer: String,
    /// The holder's own public key (the JWT's subject).
    pub key: String,
    /// When it was issued, in seconds since the epoch.
    pub issued_at: u64,
    /// For nodes: the labels written into the credential (from a join token).
    pub labels: std::collections::BTreeMap<String, String>,
    /// For nodes: the public key every command to it must be signed with.
    pub assignment_key: Option<String>,
}

fn tag<'a>(user: &'a User, key: &str) -> Option<&'a str> {
    user.tags
        .iter()
        .find_map(|t| t.strip_prefix(key).and_then(|rest| rest.strip_prefix(':')))
}

/// Reads the identity out of a user JWT.
pub fn from_jwt(token: &str) -> Result<Identity, TrustError> {
    let claims: jwt::Claims<User> = jwt::decode(token)?;
    if claims.nats.kind != "user" {
        return Err(TrustError::Jwt(format!(
            "a {:?} JWT, not a user's",
            claims.nats.kind
        )));
    }
    let role_tag = tag(&claims.nats, "role")
        .ok_or_else(|| TrustError::Jwt("not a reef credential (no role tag)".into()))?;
    let role = Role::parse(role_tag).map_err(TrustError::Jwt)?;
    let node = if role == Role::Node {
        let id = tag(&claims.nats, "node")
            .ok_or_else(|| TrustError::Jwt("a node credential without its node id".into()))?;
        let id: NodeId = id
            .parse()
            .map_err(|e| TrustError::Jwt(format!("node id {id:?}: {e}")))?;
        let trust = match tag(&claims.nats, "trust") {
            Some("dedicated") => NodeTrust::Dedicated,
            Some("contributed") => NodeTrust::Contributed,
            other => {
                return Err(TrustError::Jwt(format!(
                    "a node credential with trust {other:?}"
                )))
            }
        };
        if claims.name != id.to_string() {
            return Err(TrustError::Jwt(
                "a node credential named for another node".into(),
            ));
        }
        Some((id, trust))
    } else {
        reef_proto::roles::valid_user_name(&claims.name).map_err(TrustError::Jwt)?;
        None
    };
    if let Some(exp) = claims.exp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if exp <= now {
            return Err(TrustError::Jwt("the credential has expired".into()));
        }
    }
    let labels = claims
        .nats
        .tags
        .iter()
        .filter_map(|t| t.strip_prefix("label:"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let account = if claims.nats.issuer_account.is_empty() {
        claims.iss.clone()
    } else {
        claims.nats.issuer_account.clone()
    };
    Ok(Identity {
        role,
        name: claims.name,
        node,
        account,
        issuer: claims.iss,
        key: claims.sub,
        issued_at: claims.iat,
        labels,
        assignment_key: tag(&claims.nats, "assign").map(str::to_string),
    })
}

/// Reads the identity out of a `.creds` file's text.
pub fn from_creds(text: &str) -> Result<Identity, TrustError> {
    from_jwt(&creds::parse(text)?.jwt)
}

/// Reads a `.creds` file.
pub fn read_creds_file(path: &std::path::Path) -> Result<Identity, TrustError> {
    let text = crate::files::read(path, creds::MAX_LEN as u64)?;
    from_creds(&text).map_err(|e| TrustError::Dir {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
