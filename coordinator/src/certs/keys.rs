//! A certificate's private key at rest and on its way to nodes: encrypted
//! with the cluster key for the coordinators, sealed to each node's X25519
//! key for the nodes, both bound to the certificate's primary domain. The
//! key in the clear exists only in a coordinator's memory, wiped on drop.

use reef_proto::certs::{key_context, CertRecord, CertSource};
use reef_proto::NodeId;
use reef_secrets::{ClusterKey, SecretsError, Zeroizing};
use std::collections::BTreeMap;

/// Registered nodes and the public keys certificates are sealed to.
pub(crate) type NodeKeys = BTreeMap<NodeId, [u8; 32]>;

/// A certificate and its key in the clear, about to be stored.
pub(crate) struct NewCertificate<'a> {
    pub domains: Vec<String>,
    pub chain_pem: String,
    pub key_pem: &'a [u8],
    pub not_before_ms: u64,
    pub not_after_ms: u64,
    pub source: CertSource,
}

/// The record to store for `cert`: its key encrypted with `cluster_key` and
/// sealed to every node of `nodes`.
pub(crate) fn record(
    cert: NewCertificate<'_>,
    cluster_key: &ClusterKey,
    nodes: &NodeKeys,
) -> Result<CertRecord, SecretsError> {
    let primary = cert.domains.first().cloned().unwrap_or_default();
    let context = key_context(&primary);
    let mut sealed_keys = BTreeMap::new();
    for (node, public) in nodes {
        sealed_keys.insert(*node, reef_secrets::seal(public, &context, cert.key_pem)?);
    }
    Ok(CertRecord {
        domains: cert.domains,
        chain_pem: cert.chain_pem,
        not_before_ms: cert.not_before_ms,
        not_after_ms: cert.not_after_ms,
        source: cert.source,
        stored_key: cluster_key.encrypt(&context, cert.key_pem)?,
        sealed_keys,
        updated_at_ms: reef_proto::now_ms(),
    })
}

/// Seals `record`'s key to the nodes in `missing` (those found in `nodes`)
/// and drops the copies of the nodes in `extra`. Returns whether it changed.
pub(crate) fn reseal(
    record: &mut CertRecord,
    cluster_key: &ClusterKey,
    nodes: &NodeKeys,
    missing: &[NodeId],
    extra: &[NodeId],
) -> Result<bool, SecretsError> {
    let mut changed = false;
    for node in extra {
        changed |= record.sealed_keys.remove(node).is_some();
    }
    let targets: Vec<(NodeId, &[u8; 32])> = missing
        .iter()
        .filter_map(|n| nodes.get(n).map(|k| (*n, k)))
        .collect();
    if !targets.is_empty() {
        let context = key_context(record.primary());
        let key: Zeroizing<Vec<u8>> = cluster_key.decrypt(&context, &record.stored_key)?;
        for (node, public) in targets {
            record
                .sealed_keys
                .insert(node, reef_secrets::seal(public, &context, &key)?);
            changed = true;
        }
    }
    if changed {
        record.updated_at_ms = reef_proto::now_ms();
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_open_their_copy_and_late_nodes_get_one() {
        let cluster_key = ClusterKey::generate().expect("cluster key");
        let (first, late) = (
            reef_secrets::NodeKey::generate().expect("key"),
            reef_secrets::NodeKey::generate().expect("key"),
        );
        let (first_id, late_id, gone_id) = (NodeId::new(), NodeId::new(), NodeId::new());
        let key_pem = b"-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
        let nodes = NodeKeys::from([(first_id, first.public()), (gone_id, late.public())]);
        let mut stored = record(
            NewCertificate {
                domains: vec!["a.example.com".into()],
                chain_pem: "chain".into(),
                key_pem,
                not_before_ms: 1,
                not_after_ms: 2,
                source: CertSource::File,
            },
            &cluster_key,
            &nodes,
        )
        .expect("record");
        let context = key_context("a.example.com");
        let opened = first
            .open(&context, &stored.sealed_keys[&first_id])
            .expect("first node opens its copy");
        assert_eq!(opened.as_slice(), key_pem);
        assert!(!stored
            .stored_key
            .windows(key_pem.len())
            .any(|w| w == key_pem));

        let now = NodeKeys::from([(first_id, first.public()), (late_id, late.public())]);
        let changed =
            reseal(&mut stored, &cluster_key, &now, &[late_id], &[gone_id]).expect("reseal");
        assert!(changed);
        assert_eq!(stored.sealed_keys.keys().copied().collect::<Vec<_>>(), {
            let mut ids = vec![first_id, late_id];
            ids.sort();
            ids
        });
        let opened = late
            .open(&context, &stored.sealed_keys[&late_id])
            .expect("the late node opens its copy");
        assert_eq!(opened.as_slice(), key_pem);
        // Bound to the domain: the copy does not open as another certificate's.
        assert!(late
            .open(&key_context("b.example.com"), &stored.sealed_keys[&late_id])
            .is_err());
        assert!(!reseal(&mut stored, &cluster_key, &now, &[], &[]).expect("no-op"));
    }
}
