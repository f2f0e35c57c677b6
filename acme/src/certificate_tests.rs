//! Tests for the key, the signing request and the key check on the returned chain.

use super::*;
use rcgen::{BasicConstraints, IsCa, Issuer};

fn domains() -> Vec<String> {
    vec!["app.reef.test".to_string(), "www.app.reef.test".to_string()]
}

/// A chain for `key` from a throwaway CA, as a CA would issue it.
fn issue_for(key: &KeyPair) -> String {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = Issuer::new(ca, KeyPair::generate().unwrap());
    CertificateParams::new(domains())
        .unwrap()
        .signed_by(key, &issuer)
        .unwrap()
        .pem()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[test]
fn the_request_holds_every_domain_and_the_p256_key() {
    let (key, csr_der) = key_and_csr(&domains()).unwrap();
    assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
    for domain in domains() {
        assert!(contains(&csr_der, domain.as_bytes()), "{domain}");
    }
    assert!(contains(&csr_der, key.public_key_raw()));
    let (other, _) = key_and_csr(&domains()).unwrap();
    assert_ne!(other.public_key_raw(), key.public_key_raw());
}

#[test]
fn assembles_a_matching_chain() {
    let (key, _) = key_and_csr(&domains()).unwrap();
    let chain = issue_for(&key);
    let issued = assemble(&domains(), chain.clone(), &key).unwrap();
    assert_eq!(issued.domains, domains());
    assert_eq!(issued.chain_pem, chain);
    assert!(issued.not_before < issued.not_after);
    assert_eq!(
        KeyPair::from_pem(&issued.key_pem).unwrap().public_key_raw(),
        key.public_key_raw()
    );
    let debug = format!("{issued:?}");
    assert!(debug.contains("<redacted>") && !debug.contains("PRIVATE KEY"));
}

#[test]
fn refuses_a_chain_for_another_key() {
    let (key, _) = key_and_csr(&domains()).unwrap();
    let (other, _) = key_and_csr(&domains()).unwrap();
    let chain = issue_for(&other);
    assert!(matches!(
        assemble(&domains(), chain, &key),
        Err(AcmeError::KeyMismatch)
    ));
}

#[test]
fn refuses_an_empty_chain() {
    let (key, _) = key_and_csr(&domains()).unwrap();
    assert!(matches!(
        assemble(&domains(), String::new(), &key),
        Err(AcmeError::Certificate(_))
    ));
}
