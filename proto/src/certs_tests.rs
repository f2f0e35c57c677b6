//! Certificate names, bucket keys and coverage.

use super::*;

fn record(domains: &[&str]) -> CertRecord {
    CertRecord {
        domains: domains.iter().map(|d| d.to_string()).collect(),
        chain_pem: String::new(),
        not_before_ms: 0,
        not_after_ms: 0,
        source: CertSource::File,
        stored_key: Vec::new(),
        sealed_keys: BTreeMap::new(),
        updated_at_ms: 0,
    }
}

#[test]
fn wildcards_cover_one_level_only() {
    let cert = record(&["*.example.com", "example.com"]);
    assert!(cert.covers("a.example.com"));
    assert!(cert.covers("example.com"));
    assert!(!cert.covers("a.b.example.com"));
    assert!(!cert.covers("example.org"));
    assert!(!record(&["a.example.com"]).covers("b.example.com"));
}

#[test]
fn keys_are_valid_and_distinct() {
    assert_eq!(cert_key("app.example.com"), "app.example.com");
    assert_eq!(cert_key("*.example.com"), "_.example.com");
    assert!(is_cert_key(&cert_key("*.example.com")));
    assert!(is_cert_key("app.example.com"));
    assert!(!is_cert_key(&acme_account_key("0123abcd")));
    assert!(!is_cert_key(&acme_attempts_key("app.example.com")));
    assert!(!is_cert_key(&acme_attempts_key("*.example.com")));
    assert!(is_attempts_key(&acme_attempts_key("*.example.com")));
    assert!(!is_attempts_key(&cert_key("*.example.com")));
    let kv_key_ok = |k: &str| {
        !k.starts_with('.')
            && !k.ends_with('.')
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
    };
    for key in [
        cert_key("*.example.com"),
        cert_key("a-b.example.com"),
        acme_account_key("0123abcd"),
    ] {
        assert!(kv_key_ok(&key), "{key}");
    }
}

#[test]
fn contexts_never_look_like_secret_contexts() {
    // Secret contexts are `app/KEY`; app names have no ':'.
    assert!(key_context("a.example.com").contains(':'));
    assert!(account_context("https://ca.example/dir").starts_with("reef-acme-account:"));
}

#[test]
fn certificate_names() {
    assert!(validate_cert_domain("app.example.com").is_ok());
    assert!(validate_cert_domain("*.example.com").is_ok());
    assert!(validate_cert_domain("*.com").is_err());
    assert!(validate_cert_domain("*.*.example.com").is_err());
    assert!(validate_cert_domain("App.example.com").is_err());
    assert!(validate_cert_domain("a_b.example.com").is_err());
    assert!(validate_cert_domain("").is_err());
}

#[test]
fn records_round_trip_and_hide_keys_in_debug() {
    let mut cert = record(&["a.example.com"]);
    cert.stored_key = b"ciphertext".to_vec();
    cert.sealed_keys.insert(NodeId::new(), b"sealed".to_vec());
    let bytes = crate::encode(&cert).expect("encode");
    assert_eq!(crate::decode::<CertRecord>(&bytes).expect("decode"), cert);
    let shown = format!("{cert:?}");
    assert!(
        !shown.contains("ciphertext") && !shown.contains("115, 101"),
        "{shown}"
    );
}
