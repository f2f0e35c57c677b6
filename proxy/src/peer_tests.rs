use super::*;

#[test]
fn a_ca_that_is_not_pem_is_refused() {
    for bad in [
        &b""[..],
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\nAAA\n",
    ] {
        let error = PeerTls::new(bad).expect_err("refused");
        assert!(matches!(error, PeerTlsError::Ca(_)), "{error}");
    }
}

#[test]
fn an_identity_must_match_its_name_and_key() {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["a.node.reef".into()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("cert");

    let peer = PeerTls::new(ca.pem().as_bytes()).expect("peer tls");
    assert!(!peer.has_identity());
    let wrong_name = peer.set_identity("b.node.reef", cert.pem(), key.serialize_pem());
    assert!(wrong_name.is_err());
    let other_key = rcgen::KeyPair::generate().expect("key");
    let wrong_key = peer.set_identity("a.node.reef", cert.pem(), other_key.serialize_pem());
    assert!(wrong_key.is_err());
    assert!(!peer.has_identity());
    peer.set_identity("a.node.reef", cert.pem(), key.serialize_pem())
        .expect("set");
    assert!(peer.has_identity());
    assert_eq!(format!("{peer:?}"), "PeerTls { identity: true, .. }");
}
