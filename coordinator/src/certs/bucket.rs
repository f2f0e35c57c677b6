//! Typed access to the certificates bucket, and the sealing keys of the
//! registered nodes, for the manager, the issuer and the API.

use super::keys::NodeKeys;
use crate::error::CoordinatorError;
use crate::store;
use async_nats::jetstream::kv;
use futures::StreamExt;
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
pub(crate) async fn read_all(kv: &kv::Store) -> Result<Vec<Stored>, CoordinatorError> {
    let keys: Vec<String> = store::keys(kv)
        .await?
        .into_iter()
        .filter(|k| is_cert_key(k))
        .collect();
    let read = futures::stream::iter(keys)
        .map(|key| async move { (store::get::<CertRecord>(kv, &key).await, key) })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::with_capacity(read.len());
    for (result, key) in read {
        match result {
            Ok(Some((record, revision))) => out.push(Stored {
                key,
                record,
                revision,
            }),
            Ok(None) => {}
            Err(CoordinatorError::Corrupt { what, reason }) => {
                tracing::warn!(%what, %reason, "skipping an unreadable certificate");
            }
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Writes `record` at `key`, replacing what is there; compare-and-set, so
/// a concurrent writer is noticed and the write retried on what it wrote.
pub(crate) async fn replace(
    kv: &kv::Store,
    key: &str,
    record: &CertRecord,
) -> Result<u64, CoordinatorError> {
    let bytes = reef_proto::encode(record).map_err(CoordinatorError::store)?;
    for _ in 0..8 {
        let entry = kv.entry(key).await.map_err(CoordinatorError::store)?;
        let written = match entry {
            Some(entry) if entry.operation == kv::Operation::Put => kv
                .update(key, bytes.clone(), entry.revision)
                .await
                .map_err(|e| {
                    (e.kind() != kv::UpdateErrorKind::WrongLastRevision).then(|| e.to_string())
                }),
            _ => kv.create(key, bytes.clone()).await.map_err(|e| {
                (e.kind() != kv::CreateErrorKind::AlreadyExists).then(|| e.to_string())
            }),
        };
        match written {
            Ok(revision) => return Ok(revision),
            // Another writer got there first: try again on what it wrote.
            Err(None) => continue,
            Err(Some(e)) => {
                return Err(CoordinatorError::Store(format!(
                    "writing certificate {key}: {e}"
                )))
            }
        }
    }
    Err(CoordinatorError::Conflict {
        key: format!("{}/{key}", kv.name),
    })
}

/// The sealing key of every registered dedicated node: certificate keys
/// are never sealed to a contributed one.
pub(crate) async fn node_keys(nodes: &kv::Store) -> Result<NodeKeys, CoordinatorError> {
    Ok(store::all::<NodeRecord>(nodes)
        .await?
        .into_iter()
        .filter(|n| n.trust == reef_proto::node::TrustClass::Dedicated)
        .map(|n| (n.id, n.sealing_key))
        .collect())
}
