//! What a node's credential vouches for: its trust class, read from the
//! user JWT the node presents with its registration. Pure: the signature is
//! checked against the issuer the coordinator was told to trust.

use reef_proto::node::TrustClass;
use reef_proto::roles::Role;
use reef_proto::NodeId;
use reef_trust::NodeTrust;

/// Why a node's credential vouches for nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Untrusted {
    #[error("node {node}'s credential cannot be read")]
    Unreadable {
        node: NodeId,
        #[source]
        source: reef_trust::TrustError,
    },
    #[error("node {node}'s credential was not signed by this cluster")]
    ForeignIssuer { node: NodeId },
    #[error("node {node} presented the credential of node {other}")]
    AnotherNode { node: NodeId, other: NodeId },
    #[error("node {node} presented a {role} credential, not a node's")]
    NotANode { node: NodeId, role: Role },
}

/// The trust class (and labels, from a join token) node `node`'s
/// credential `jwt` gives it, if `issuer` signed it for that node; else why not.
pub(crate) fn node_trust(
    node: NodeId,
    jwt: &str,
    issuer: &str,
) -> Result<(TrustClass, std::collections::BTreeMap<String, String>), Untrusted> {
    let who = reef_trust::identity::from_jwt(jwt)
        .map_err(|source| Untrusted::Unreadable { node, source })?;
    if who.issuer != issuer {
        return Err(Untrusted::ForeignIssuer { node });
    }
    match who.node {
        Some((id, trust)) if who.role == Role::Node && id == node => Ok((
            match trust {
                NodeTrust::Dedicated => TrustClass::Dedicated,
                NodeTrust::Contributed => TrustClass::Contributed,
            },
            who.labels,
        )),
        Some((other, _)) => Err(Untrusted::AnotherNode { node, other }),
        None => Err(Untrusted::NotANode {
            node,
            role: who.role,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_decides_the_trust_class_and_must_be_the_nodes_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = reef_trust::ClusterDir::init(dir.path(), "test").expect("init");
        let issuer = cluster.info.account_signing_key.clone();
        let jwt = |text: &str| reef_trust::creds::parse(text).expect("creds").jwt;

        let node = NodeId::new();
        let lent = jwt(&cluster
            .issue_node(node, NodeTrust::Contributed)
            .expect("creds"));
        assert_eq!(
            node_trust(node, &lent, &issuer).map(|t| t.0).ok(),
            Some(TrustClass::Contributed)
        );
        let server = jwt(&cluster
            .issue_node(node, NodeTrust::Dedicated)
            .expect("creds"));
        assert_eq!(
            node_trust(node, &server, &issuer).map(|t| t.0).ok(),
            Some(TrustClass::Dedicated)
        );
        let labels: std::collections::BTreeMap<String, String> =
            [("gpu".to_string(), "yes".to_string())].into();
        let key = nkeys::KeyPair::new_user().public_key();
        let joined = cluster
            .sign_node_key_with_labels(node, NodeTrust::Contributed, &key, &labels)
            .expect("jwt");
        assert_eq!(
            node_trust(node, &joined, &issuer).map(|t| t.1).ok(),
            Some(labels)
        );

        let other = NodeId::new();
        let err = node_trust(other, &lent, &issuer)
            .expect_err("another node's")
            .to_string();
        assert!(err.contains("presented the credential of node"), "{err}");

        let user = jwt(&cluster.issue_user(Role::Admin, "ops").expect("creds"));
        let err = node_trust(node, &user, &issuer)
            .expect_err("a user's")
            .to_string();
        assert!(err.contains("not a node's"), "{err}");

        let elsewhere = tempfile::tempdir().expect("tempdir");
        let foreign = reef_trust::ClusterDir::init(elsewhere.path(), "other").expect("init");
        let stranger = jwt(&foreign
            .issue_node(node, NodeTrust::Dedicated)
            .expect("creds"));
        let err = node_trust(node, &stranger, &issuer)
            .expect_err("another cluster's")
            .to_string();
        assert!(err.contains("not signed by this cluster"), "{err}");

        assert!(node_trust(node, "garbage", &issuer).is_err());
    }
}
