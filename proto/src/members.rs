//! Who holds a credential of the cluster: each user and node the
//! coordinators issued one to or saw register, by public key only (the
//! seed never leaves the holder), and whether it was revoked.

use crate::envelope::{Message, MessageKind};
use serde::{Deserialize, Serialize};

/// One credential holder, in `reef-members` under [`Member::key_for`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// A user's name, or a node's id.
    pub name: String,
    /// `admin`, `deployer`, `submitter`, `viewer` or `node`.
    pub role: String,
    /// The holder's public nkey (a NATS user key, `U...`).
    pub public_key: String,
    pub added_at_ms: u64,
    /// When it was revoked (seconds since the epoch, as NATS counts
    /// revocations): every credential of this key issued until then is refused.
    pub revoked_at_s: Option<u64>,
}

impl Message for Member {
    const KIND: MessageKind = MessageKind::Member;
}

/// The role an app's own NATS credential holds (`[services.nats]`).
pub const APP_ROLE: &str = "app";

impl Member {
    /// The bucket key: `user.<name>`, `node.<id>` or `app.<name>` (an
    /// app's own credential on the cluster's NATS, `[services.nats]`).
    pub fn key(&self) -> String {
        Self::key_for(&self.role, &self.name)
    }

    pub fn key_for(role: &str, name: &str) -> String {
        match role {
            "node" => format!("node.{name}"),
            APP_ROLE => format!("app.{name}"),
            _ => format!("user.{name}"),
        }
    }
}

/// A join token, in `reef-tokens` under its id. The token itself (with its
/// credential's seed) is only ever in the hands of whoever created it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    pub id: String,
    /// What the joining node becomes, whatever it says.
    pub trust: crate::node::TrustClass,
    pub labels: std::collections::BTreeMap<String, String>,
    pub expires_at_ms: u64,
    /// The public key of the token's credential (revoked once used).
    pub joiner_key: String,
    /// The node that joined with it, and when.
    pub used_by: Option<crate::NodeId>,
    pub used_at_ms: Option<u64>,
    /// Whether the token's credential was revoked (a while after its use,
    /// once the answer has surely reached the node).
    pub joiner_revoked: bool,
}

impl Message for JoinTokenRecord {
    const KIND: MessageKind = MessageKind::JoinToken;
}

/// The account's revocation list, from every revoked member: public key →
/// revoked at (seconds). The latest wins when a key was revoked twice.
pub fn revocations<'a>(
    members: impl IntoIterator<Item = &'a Member>,
) -> std::collections::BTreeMap<String, u64> {
    let mut list = std::collections::BTreeMap::new();
    for member in members {
        if let Some(at) = member.revoked_at_s {
            let entry = list.entry(member.public_key.clone()).or_insert(at);
            *entry = (*entry).max(at);
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, key: &str, revoked: Option<u64>) -> Member {
        Member {
            name: name.into(),
            role: "viewer".into(),
            public_key: key.into(),
            added_at_ms: 1,
            revoked_at_s: revoked,
        }
    }

    #[test]
    fn only_revoked_members_are_listed_with_their_latest_time() {
        let members = [
            member("a", "UA", None),
            member("b", "UB", Some(10)),
            member("c", "UB", Some(20)),
            member("d", "UD", Some(5)),
        ];
        let list = revocations(&members);
        assert_eq!(list.len(), 2);
        assert_eq!(list["UB"], 20);
        assert_eq!(list["UD"], 5);
        assert_eq!(Member::key_for("node", "x"), "node.x");
        assert_eq!(member("ops", "U", None).key(), "user.ops");
    }
}
