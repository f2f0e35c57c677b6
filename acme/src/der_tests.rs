//! Tests for the DER walk: known times, rcgen-made certificates, and
//! malformed input that must fail without panicking.

use super::*;
use proptest::prelude::*;
use rcgen::{date_time_ymd, CertificateParams, KeyPair};

fn unix(seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

#[test]
fn utc_and_generalized_times() {
    let cases: [(&[u8], bool, i64); 7] = [
        (b"700101000000Z", false, 0),
        (b"691231235959Z", false, -1),
        (b"491231235959Z", false, 2_524_607_999),
        (b"500101000000Z", false, -631_152_000),
        (b"20500101000000Z", true, 2_524_608_000),
        (b"20240229120000Z", true, 1_709_208_000),
        (b"99991231235959Z", true, 253_402_300_799),
    ];
    for (text, generalized, seconds) in cases {
        let parsed = parse_time(text, generalized).unwrap();
        assert_eq!(parsed, unix(seconds), "{}", String::from_utf8_lossy(text));
    }
}

#[test]
fn malformed_times_are_refused() {
    for (text, generalized) in [
        (&b"20230229120000Z"[..], true), // not a leap year
        (b"20231301000000Z", true),      // month 13
        (b"20230100000000Z", true),      // day 0
        (b"20230101240000Z", true),      // hour 24
        (b"20230101006000Z", true),      // minute 60
        (b"20230101000060Z", true),      // second 60
        (b"20230101000000", true),       // no Z
        (b"2023010100000Z", true),       // short
        (b"20230101000000+0000", true),  // offset
        (b"230101000000Z", true),        // UTCTime text as GeneralizedTime
        (b"20230101000000Z", false),     // GeneralizedTime text as UTCTime
        (b"2301010000a0Z", false),       // not a digit
        (b"", false),
    ] {
        assert!(
            parse_time(text, generalized).is_err(),
            "{}",
            String::from_utf8_lossy(text)
        );
    }
}

fn cert_der(not_before_offset: Duration, not_after_offset: Duration) -> (Vec<u8>, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["app.reef.test".to_string()]).unwrap();
    params.not_before = date_time_ymd(1950, 1, 1) + not_before_offset;
    params.not_after = date_time_ymd(1950, 1, 1) + not_after_offset;
    let cert = params.self_signed(&key).unwrap();
    (cert.der().to_vec(), key)
}

#[test]
fn reads_an_rcgen_certificate() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["app.reef.test".to_string()]).unwrap();
    params.not_before = date_time_ymd(2024, 2, 29);
    params.not_after = date_time_ymd(2051, 6, 1);
    let cert = params.self_signed(&key).unwrap();
    let facts = leaf_facts(cert.der()).unwrap();
    assert_eq!(facts.not_before, unix(1_709_164_800));
    assert_eq!(facts.not_after, unix(2_569_190_400));
    assert_eq!(facts.public_key, key.public_key_raw());
}

#[test]
fn refuses_non_certificates() {
    assert!(leaf_facts(b"").is_err());
    assert!(leaf_facts(&[0x30, 0x00]).is_err());
    assert!(leaf_facts(&[0x30, 0x85, 1, 2, 3, 4, 5]).is_err());
    assert!(leaf_facts(&[0x04, 0x01, 0x00]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trips_rcgen_validity(
        // Up to 1950 + 7,890 + 100 years: within the year 9999 certificates can name.
        before in 0u64..(7890 * 365 * 86_400),
        length in 1u64..(100 * 365 * 86_400),
    ) {
        let before = Duration::from_secs(before);
        let after = before + Duration::from_secs(length);
        let (der, key) = cert_der(before, after);
        let facts = leaf_facts(&der).unwrap();
        let base = unix(-631_152_000);
        prop_assert_eq!(facts.not_before, base + before);
        prop_assert_eq!(facts.not_after, base + after);
        prop_assert_eq!(facts.public_key, key.public_key_raw());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = leaf_facts(&bytes);
    }

    #[test]
    fn damaged_certificates_never_panic(
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bits in 1u8..,
    ) {
        let (der, _) = cert_der(Duration::from_secs(0), Duration::from_secs(86_400));
        let truncated = &der[..cut.index(der.len())];
        prop_assert!(leaf_facts(truncated).is_err());
        let mut flipped = der.clone();
        let at = flip.index(flipped.len());
        flipped[at] ^= bits;
        let _ = leaf_facts(&flipped);
    }
}
