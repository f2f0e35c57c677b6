//! Tests for the offline checks of [`AcmeConfig`].

use super::*;

fn config() -> AcmeConfig {
    AcmeConfig::new(LETS_ENCRYPT_STAGING)
}

#[test]
fn defaults_pass() {
    let config = config();
    assert!(config.check().is_ok());
    assert_eq!(config.timeout, AcmeConfig::DEFAULT_TIMEOUT);
    assert!(config.contact.is_empty());
    assert!(config.ca_root_pem.is_none());
}

#[test]
fn directory_must_be_https() {
    let mut config = config();
    config.directory_url = "http://acme.example/dir".into();
    let err = config.check().unwrap_err().to_string();
    assert!(err.contains("not an https:// URL"), "{err}");
}

#[test]
fn contacts_must_be_mailto() {
    for (contact, ok) in [
        ("mailto:ops@example.com", true),
        ("ops@example.com", false),
        ("mailto:", false),
        ("mailto:@example.com", false),
        ("mailto:ops@", false),
        ("mailto:ops @example.com", false),
        ("tel:+15555550100", false),
    ] {
        let mut config = config();
        config.contact = vec![contact.to_string()];
        assert_eq!(config.check().is_ok(), ok, "{contact}");
    }
}

#[test]
fn timeout_must_not_be_zero() {
    let mut config = config();
    config.timeout = Duration::ZERO;
    assert!(config.check().is_err());
}
