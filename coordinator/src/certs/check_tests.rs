//! Certificates from files: what is accepted and what is refused, with which message.

use super::*;
use rcgen::{CertificateParams, KeyPair};

struct Pem {
    chain: String,
    key: String,
}

fn self_signed(names: &[&str], valid: std::ops::Range<SystemTime>) -> Pem {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.not_before = valid.start.into();
    params.not_after = valid.end.into();
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    Pem {
        chain: cert.pem(),
        key: key.serialize_pem(),
    }
}

const DAY: Duration = Duration::from_secs(86_400);

fn now() -> SystemTime {
    SystemTime::now()
}

fn current(names: &[&str]) -> Pem {
    self_signed(names, now() - DAY..now() + 90 * DAY)
}

fn domains(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn a_good_pair_is_accepted_with_its_validity() {
    let pem = current(&["a.example.com", "*.example.org"]);
    let checked = check_file_certificate(
        &domains(&["a.example.com", "*.example.org"]),
        &pem.chain,
        pem.key.as_bytes(),
        now(),
    )
    .expect("accepted");
    assert!(checked.not_after > now() + 89 * DAY);
    assert!(checked.not_before_ms() < checked.not_after_ms());
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let pem = current(&["a.example.com"]);
    let other = current(&["a.example.com"]);
    let err = check_file_certificate(
        &domains(&["a.example.com"]),
        &pem.chain,
        other.key.as_bytes(),
        now(),
    )
    .expect_err("refused");
    assert!(
        err.to_string()
            .contains("does not belong to the certificate"),
        "{err}"
    );
}

#[test]
fn a_domain_the_certificate_does_not_cover_is_refused() {
    let pem = current(&["a.example.com"]);
    let err = check_file_certificate(
        &domains(&["a.example.com", "b.example.com"]),
        &pem.chain,
        pem.key.as_bytes(),
        now(),
    )
    .expect_err("refused");
    assert!(
        err.to_string()
            .contains("b.example.com: the certificate does not cover b.example.com"),
        "{err}"
    );
}

#[test]
fn expired_and_future_certificates_are_refused() {
    let old = self_signed(&["a.example.com"], now() - 100 * DAY..now() - 10 * DAY);
    let err = check_file_certificate(
        &domains(&["a.example.com"]),
        &old.chain,
        old.key.as_bytes(),
        now(),
    )
    .expect_err("expired");
    assert!(err.to_string().contains("expired 10 days ago"), "{err}");

    let later = self_signed(&["a.example.com"], now() + 5 * DAY..now() + 50 * DAY);
    let err = check_file_certificate(
        &domains(&["a.example.com"]),
        &later.chain,
        later.key.as_bytes(),
        now(),
    )
    .expect_err("not yet valid");
    assert!(err.to_string().contains("not valid until"), "{err}");
}

#[test]
fn bad_input_is_refused_before_parsing() {
    let pem = current(&["a.example.com"]);
    let check = |names: &[&str], chain: &str, key: &str| {
        check_file_certificate(&domains(names), chain, key.as_bytes(), now())
            .expect_err("refused")
            .to_string()
    };
    assert!(check(&[], &pem.chain, &pem.key).contains("no domain"));
    assert!(check(&["a.example.com", "a.example.com"], &pem.chain, &pem.key).contains("twice"));
    assert!(check(&["*.com"], &pem.chain, &pem.key).contains("top-level"));
    assert!(check(&["A.example.com"], &pem.chain, &pem.key).contains("not a valid host name"));
    assert!(check(&["a.example.com"], "not pem", &pem.key).contains("CERTIFICATE"));
    assert!(check(&["a.example.com"], &pem.chain, "not pem").contains("private key"));
    let huge = "x".repeat(MAX_PEM_BYTES + 1);
    assert!(check(&["a.example.com"], &pem.chain, &huge).contains("at most"));
}
