use super::*;

/// A self-signed certificate for `names`: (chain PEM, key PEM).
fn self_signed(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let generated = rcgen::generate_simple_self_signed(names).expect("generate a certificate");
    (generated.cert.pem(), generated.signing_key.serialize_pem())
}

/// The first certificate of the chain served for `server_name`.
fn served(certs: &Certificates, server_name: &str) -> Option<CertificateDer<'static>> {
    certs
        .lookup(server_name)
        .and_then(|key| key.cert.first().cloned())
}

fn leaf(chain_pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(chain_pem.as_bytes()).expect("pem")
}

#[test]
fn exact_names_are_served_case_insensitively() {
    let certs = Certificates::new();
    let (a_chain, a_key) = self_signed(&["a.example"]);
    let (b_chain, b_key) = self_signed(&["b.example"]);
    certs.set("A.Example", &a_chain, &a_key).expect("a");
    certs.set("b.example.", &b_chain, &b_key).expect("b");
    assert_eq!(certs.domains(), ["a.example", "b.example"]);
    assert_eq!(served(&certs, "a.example"), Some(leaf(&a_chain)));
    assert_eq!(served(&certs, "A.EXAMPLE"), Some(leaf(&a_chain)));
    assert_eq!(served(&certs, "b.example"), Some(leaf(&b_chain)));
    assert_eq!(served(&certs, "c.example"), None);
}

#[test]
fn a_wildcard_covers_one_level_and_an_exact_name_wins() {
    let certs = Certificates::new();
    let (wild_chain, wild_key) = self_signed(&["*.example.com"]);
    let (www_chain, www_key) = self_signed(&["www.example.com"]);
    certs
        .set("*.example.com", &wild_chain, &wild_key)
        .expect("wildcard");
    certs
        .set("www.example.com", &www_chain, &www_key)
        .expect("exact");
    assert_eq!(served(&certs, "api.example.com"), Some(leaf(&wild_chain)));
    assert_eq!(served(&certs, "API.example.com"), Some(leaf(&wild_chain)));
    assert_eq!(served(&certs, "www.example.com"), Some(leaf(&www_chain)));
    assert_eq!(served(&certs, "example.com"), None);
    assert_eq!(served(&certs, "a.b.example.com"), None);
}

#[test]
fn removed_names_are_no_longer_served() {
    let certs = Certificates::new();
    let (chain, key) = self_signed(&["a.example"]);
    certs.set("a.example", &chain, &key).expect("set");
    let clone = certs.clone();
    assert!(clone.remove("A.example"));
    assert!(!clone.remove("a.example"));
    assert_eq!(served(&certs, "a.example"), None, "clones share the store");
    assert!(certs.domains().is_empty());
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let (chain, _) = self_signed(&["a.example"]);
    let (_, other_key) = self_signed(&["a.example"]);
    let error = Certificates::new()
        .set("a.example", &chain, &other_key)
        .expect_err("mismatched key");
    assert!(matches!(error, CertError::KeyMismatch), "{error}");
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let (chain, key) = self_signed(&["a.example"]);
    let certs = Certificates::new();
    let error = certs
        .set("b.example", &chain, &key)
        .expect_err("wrong name");
    assert_eq!(
        error.to_string(),
        "the certificate does not cover b.example"
    );
    // A certificate for one name does not cover all of a wildcard.
    let (chain, key) = self_signed(&["www.example.com"]);
    let error = certs
        .set("*.example.com", &chain, &key)
        .expect_err("wrong name");
    assert!(matches!(error, CertError::WrongName { .. }), "{error}");
}

#[test]
fn broken_pem_is_refused_with_what_is_wrong() {
    let (chain, key) = self_signed(&["a.example"]);
    let certs = Certificates::new();
    assert!(matches!(
        certs.set("a.example", "", &key),
        Err(CertError::NoCertificate)
    ));
    assert!(matches!(
        certs.set("a.example", &key, &key),
        Err(CertError::NoCertificate)
    ));
    let truncated = &chain[..chain.len() - 30];
    assert!(matches!(
        certs.set("a.example", truncated, &key),
        Err(CertError::ChainPem(_))
    ));
    assert!(matches!(
        certs.set("a.example", &chain, &chain),
        Err(CertError::KeyPem(_))
    ));
    assert!(certs.domains().is_empty());
}

#[test]
fn bad_names_are_refused() {
    let (chain, key) = self_signed(&["a.example"]);
    for bad in [
        "",
        ".",
        "*.com",
        "a..example",
        "*.*.example",
        "a b.example",
        "-a.example",
        "a.example:443",
        "a.*.example",
    ] {
        assert!(
            matches!(
                Certificates::new().set(bad, &chain, &key),
                Err(CertError::BadDomain { .. })
            ),
            "{bad:?}"
        );
    }
}
