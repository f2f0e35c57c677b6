//! Tests for reading validity periods from PEM chains and for the renewal rule.

use super::*;
use rcgen::{date_time_ymd, CertificateParams, KeyPair};
use std::time::UNIX_EPOCH;

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 60 * 60)
}

fn pem_valid(from: (i32, u8, u8), to: (i32, u8, u8)) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["app.reef.test".to_string()]).unwrap();
    params.not_before = date_time_ymd(from.0, from.1, from.2);
    params.not_after = date_time_ymd(to.0, to.1, to.2);
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn reads_the_leaf_of_a_chain() {
    let leaf = pem_valid((2025, 1, 1), (2025, 4, 1));
    let other = pem_valid((2020, 1, 1), (2030, 1, 1));
    let (not_before, not_after) = certificate_validity(&format!("{leaf}{other}")).unwrap();
    assert_eq!(not_before, UNIX_EPOCH + Duration::from_secs(1_735_689_600));
    assert_eq!(not_after, not_before + days(90));
}

#[test]
fn text_around_the_pem_is_ignored() {
    let leaf = pem_valid((2025, 1, 1), (2025, 4, 1));
    let (_, not_after) = certificate_validity(&format!("issued by pebble\n{leaf}\n")).unwrap();
    assert_eq!(not_after, UNIX_EPOCH + Duration::from_secs(1_743_465_600));
}

#[test]
fn refuses_what_is_not_a_certificate() {
    assert_eq!(
        certificate_validity(""),
        Err(CertificateError::NoCertificate)
    );
    assert_eq!(
        certificate_validity("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(CertificateError::NoCertificate)
    );
    assert!(matches!(
        certificate_validity("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
        Err(CertificateError::Pem(_))
    ));
    assert!(matches!(
        certificate_validity("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"),
        Err(CertificateError::Malformed(_))
    ));
}

#[test]
fn renewal_starts_when_less_than_the_margin_is_left() {
    let now = UNIX_EPOCH + days(20_000);
    let margin = DEFAULT_RENEW_BEFORE;
    assert!(!needs_renewal(now + days(90), now, margin));
    assert!(!needs_renewal(now + days(30), now, margin));
    assert!(needs_renewal(
        now + days(30) - Duration::from_secs(1),
        now,
        margin
    ));
    assert!(needs_renewal(now + days(1), now, margin));
    assert!(needs_renewal(now, now, margin));
    assert!(needs_renewal(now - days(1), now, margin));
    assert!(!needs_renewal(now + days(1), now, Duration::ZERO));
}

#[test]
fn renewal_of_a_parsed_certificate() {
    let pem = pem_valid((2025, 1, 1), (2025, 4, 1));
    let (not_before, not_after) = certificate_validity(&pem).unwrap();
    assert!(!needs_renewal(not_after, not_before, DEFAULT_RENEW_BEFORE));
    assert!(needs_renewal(
        not_after,
        not_before + days(61),
        DEFAULT_RENEW_BEFORE
    ));
}
