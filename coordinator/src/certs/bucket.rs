//! Reading the certificates bucket, and the sealing keys of the
//! registered nodes, for the manager, the issuer and the API.

use super::keys::NodeKeys;
use crate::store::{Bucket, StoreError};
use reef_proto::certs::{is_cert_key, CertRecord};
use reef_proto::node::NodeRecord;

/// One stored certificate with its key and revision.
pub(crate) struct Stored {
    pub key: String,
    pub record: CertRecord,
    pub revision: u64,
}

/// Every certificate in the bucket (the ACME account entries left out);
/// unreadable ones are logged and skipped.
pub(crate) async fn read_all(certs: &Bucket<CertRecord>) -> Result<Vec<Stored>, StoreError> {
    let keys = certs.keys().await?.into_iter().filter(|k| is_cert_key(k));
    let mut out: Vec<Stored> = certs
        .read_many(keys)
        .await?
        .into_iter()
        .map(|(key, record, revision)| Stored {
            key,
            record,
            revision,
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// The sealing key of every registered dedicated node: certificate keys
/// are never sealed to a contributed one.
pub(crate) async fn node_keys(nodes: &Bucket<NodeRecord>) -> Result<NodeKeys, StoreError> {
    Ok(nodes
        .all()
        .await?
        .into_iter()
        .filter(|n| n.trust == reef_proto::node::TrustClass::Dedicated)
        .map(|n| (n.id, n.sealing_key))
        .collect())
}
