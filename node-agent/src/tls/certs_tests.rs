//! Which certificates a node serves as the bucket changes.

use super::*;
use reef_proto::certs::{acme_account_key, CertSource};
use reef_secrets::NodeKey;

struct Pem {
    chain: String,
    key: String,
}

fn certificate(names: &[&str]) -> Pem {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    Pem {
        chain: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// The stored form of `pem` for `domains`, sealed to `nodes`.
fn stored(domains: &[&str], pem: &Pem, nodes: &[(NodeId, &NodeKey)]) -> Vec<u8> {
    let context = key_context(domains[0]);
    let record = CertRecord {
        domains: domains.iter().map(|d| d.to_string()).collect(),
        chain_pem: pem.chain.clone(),
        not_before_ms: 0,
        not_after_ms: u64::MAX,
        source: CertSource::File,
        stored_key: Vec::new(),
        sealed_keys: nodes
            .iter()
            .map(|(id, key)| {
                let sealed =
                    reef_secrets::seal(&key.public(), &context, pem.key.as_bytes()).expect("seal");
                (*id, sealed)
            })
            .collect(),
        updated_at_ms: 0,
    };
    reef_proto::encode(&record).expect("encode").to_vec()
}

fn follower() -> (CertFollower<NodeKey>, NodeId, reef_proxy::Certificates) {
    let node = NodeId::new();
    let certs = reef_proxy::Certificates::new();
    let key = NodeKey::generate().expect("node key");
    (CertFollower::new(node, key, certs.clone()), node, certs)
}

fn put(follower: &mut CertFollower<NodeKey>, key: &str, revision: u64, value: &[u8]) {
    follower.apply(key, Change::Put { revision, value });
}

#[test]
fn a_certificate_sealed_to_the_node_is_served_until_removed() {
    let (mut follower, node, certs) = follower();
    let pem = certificate(&["a.example.com", "www.example.com"]);
    let value = stored(
        &["a.example.com", "www.example.com"],
        &pem,
        &[(node, &follower.opener)],
    );
    put(&mut follower, "a.example.com", 1, &value);
    assert_eq!(certs.domains(), vec!["a.example.com", "www.example.com"]);
    follower.apply("a.example.com", Change::Removed);
    assert!(certs.domains().is_empty());
}

#[test]
fn a_certificate_sealed_to_other_nodes_only_is_not_served() {
    let (mut follower, _node, certs) = follower();
    let other = NodeKey::generate().expect("key");
    let pem = certificate(&["a.example.com"]);
    let value = stored(&["a.example.com"], &pem, &[(NodeId::new(), &other)]);
    put(&mut follower, "a.example.com", 1, &value);
    assert!(certs.domains().is_empty());
}

#[test]
fn a_copy_sealed_under_another_name_does_not_open() {
    let (mut follower, node, certs) = follower();
    let pem = certificate(&["a.example.com"]);
    // Stored under b's key, claiming to be a's: refused before opening.
    let value = stored(&["a.example.com"], &pem, &[(node, &follower.opener)]);
    put(&mut follower, "b.example.com", 1, &value);
    assert!(certs.domains().is_empty());
}

#[test]
fn a_name_prefers_its_own_certificate_and_falls_back() {
    let (mut follower, node, certs) = follower();
    let wide = certificate(&["a.example.com", "b.example.com"]);
    let own = certificate(&["b.example.com"]);
    let me = [(node, &follower.opener)];
    let wide_value = stored(&["a.example.com", "b.example.com"], &wide, &me);
    let own_value = stored(&["b.example.com"], &own, &me);
    put(&mut follower, "a.example.com", 1, &wide_value);
    put(&mut follower, "b.example.com", 2, &own_value);
    assert_eq!(
        follower.served.get("b.example.com"),
        Some(&("b.example.com".to_string(), 2))
    );
    assert_eq!(
        follower.served.get("a.example.com"),
        Some(&("a.example.com".to_string(), 1))
    );
    follower.apply("b.example.com", Change::Removed);
    assert_eq!(
        follower.served.get("b.example.com"),
        Some(&("a.example.com".to_string(), 1)),
        "b falls back to the certificate that also lists it"
    );
    assert_eq!(certs.domains(), vec!["a.example.com", "b.example.com"]);
}

#[test]
fn account_entries_and_junk_are_ignored() {
    let (mut follower, _node, certs) = follower();
    put(
        &mut follower,
        &acme_account_key("00ff"),
        1,
        b"encrypted credentials",
    );
    put(&mut follower, "a.example.com", 2, b"junk");
    assert!(certs.domains().is_empty());
    assert!(follower.usable.is_empty());
}
