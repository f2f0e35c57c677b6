//! Certificates for the node-to-node links: a dedicated node sends the
//! public half of a P-256 key it made, and gets back a certificate for its
//! peer name signed by the cluster CA. Contributed nodes get none: they run
//! no app instance and are given no routes, so no request is ever forwarded
//! to or by them.

use crate::drive::Coordinator;
use reef_proto::api::{ApiError, ApiErrorKind};
use reef_proto::node::TrustClass;
use reef_proto::NodeId;

/// Why `caller` may not have a certificate, if it may not: it must be a
/// node this coordinator knows (registered, so its trust class was read
/// from its credential) and a dedicated one.
pub(crate) fn peer_cert_refusal(caller: &str, trust: Option<TrustClass>) -> Option<String> {
    match trust {
        None => Some(format!(
            "node {caller} is not registered: register before asking for a certificate"
        )),
        Some(TrustClass::Contributed) => Some(format!(
            "node {caller} is a contributed node: it takes no forwarded requests and gets no \
             node-to-node certificate"
        )),
        Some(TrustClass::Dedicated) => None,
    }
}

impl Coordinator {
    /// Issues node `caller`'s certificate for `public_key`.
    pub(crate) fn peer_certificate(
        &self,
        caller: &str,
        public_key: &[u8],
    ) -> Result<reef_trust::pki::PeerCert, ApiError> {
        let authority = self.authority()?;
        let node: NodeId = caller.parse().map_err(|_| {
            ApiError::new(ApiErrorKind::Invalid, format!("{caller} is not a node id"))
        })?;
        let trust = self.cluster.node(node).map(|entry| entry.record.trust);
        if let Some(why) = peer_cert_refusal(caller, trust) {
            return Err(ApiError::new(ApiErrorKind::Forbidden, why));
        }
        let issued = authority
            .dir
            .issue_peer_cert(node, public_key)
            .map_err(|e| ApiError::new(ApiErrorKind::Invalid, e.to_string()))?;
        tracing::info!(%node, "node certificate issued");
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_dedicated_nodes_get_a_certificate() {
        assert!(peer_cert_refusal("n1", None).is_some_and(|why| why.contains("not registered")));
        assert!(peer_cert_refusal("n1", Some(TrustClass::Contributed))
            .is_some_and(|why| why.contains("contributed")));
        assert_eq!(peer_cert_refusal("n1", Some(TrustClass::Dedicated)), None);
    }
}
