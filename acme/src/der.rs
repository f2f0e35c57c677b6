//! Just enough DER to read a certificate's validity period and public key:
//! walks `Certificate → tbsCertificate → validity, subjectPublicKeyInfo` and
//! decodes UTCTime and GeneralizedTime. It reads bytes from the network, so it
//! checks every length and never panics on malformed input.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::CertificateError;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version` in tbsCertificate.
const VERSION_TAG: u8 = 0xa0;

/// The parts of an X.509 certificate this crate needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeafFacts<'a> {
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    /// The subjectPublicKey bits (for EC keys, the uncompressed point).
    pub(crate) public_key: &'a [u8],
}

/// Reads the validity period and public key of one DER certificate.
pub(crate) fn leaf_facts(cert_der: &[u8]) -> Result<LeafFacts<'_>, CertificateError> {
    let mut outer = Reader::new(cert_der);
    let certificate = outer.expect(SEQUENCE, "certificate is not a SEQUENCE")?;
    let mut certificate = Reader::new(certificate);
    let tbs = certificate.expect(SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let mut tbs = Reader::new(tbs);
    if tbs.peek_tag() == Some(VERSION_TAG) {
        tbs.any()?;
    }
    tbs.expect(INTEGER, "serialNumber is not an INTEGER")?;
    tbs.expect(SEQUENCE, "signature algorithm is not a SEQUENCE")?;
    tbs.expect(SEQUENCE, "issuer is not a SEQUENCE")?;
    let validity = tbs.expect(SEQUENCE, "validity is not a SEQUENCE")?;
    tbs.expect(SEQUENCE, "subject is not a SEQUENCE")?;
    let spki = tbs.expect(SEQUENCE, "subjectPublicKeyInfo is not a SEQUENCE")?;

    let mut validity = Reader::new(validity);
    let not_before = validity.time()?;
    let not_after = validity.time()?;

    let mut spki = Reader::new(spki);
    spki.expect(SEQUENCE, "public key algorithm is not a SEQUENCE")?;
    let bits = spki.expect(BIT_STRING, "subjectPublicKey is not a BIT STRING")?;
    let public_key = match bits.split_first() {
        Some((0, key)) => key,
        _ => {
            return Err(CertificateError::Malformed(
                "subjectPublicKey has unused bits",
            ))
        }
    };
    Ok(LeafFacts {
        not_before,
        not_after,
        public_key,
    })
}

/// A cursor over DER elements at one nesting level.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element's tag and contents.
    fn any(&mut self) -> Result<(u8, &'a [u8]), CertificateError> {
        let truncated = CertificateError::Malformed("truncated DER");
        let (&tag, rest) = self.rest.split_first().ok_or(truncated.clone())?;
        if tag & 0x1f == 0x1f {
            return Err(CertificateError::Malformed("multi-byte DER tag"));
        }
        let (&first, mut rest) = rest.split_first().ok_or(truncated.clone())?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(CertificateError::Malformed("unsupported DER length"));
            }
            if rest.len() < count {
                return Err(truncated);
            }
            let (digits, after) = rest.split_at(count);
            rest = after;
            digits
                .iter()
                .fold(0usize, |len, &digit| (len << 8) | usize::from(digit))
        };
        if rest.len() < len {
            return Err(truncated);
        }
        let (contents, after) = rest.split_at(len);
        self.rest = after;
        Ok((tag, contents))
    }

    /// The next element's contents, which must have tag `tag`.
    fn expect(&mut self, tag: u8, problem: &'static str) -> Result<&'a [u8], CertificateError> {
        match self.any()? {
            (found, contents) if found == tag => Ok(contents),
            _ => Err(CertificateError::Malformed(problem)),
        }
    }

    fn time(&mut self) -> Result<SystemTime, CertificateError> {
        match self.any()? {
            (UTC_TIME, text) => parse_time(text, false),
            (GENERALIZED_TIME, text) => parse_time(text, true),
            _ => Err(CertificateError::Malformed(
                "validity time is neither UTCTime nor GeneralizedTime",
            )),
        }
    }
}

/// Parses `YYMMDDHHMMSSZ` (UTCTime) or `YYYYMMDDHHMMSSZ` (GeneralizedTime),
/// the only forms RFC 5280 allows in certificates.
pub(crate) fn parse_time(text: &[u8], generalized: bool) -> Result<SystemTime, CertificateError> {
    let bad = CertificateError::Malformed("validity time is not in the RFC 5280 form");
    let digits = match text.split_last() {
        Some((b'Z', digits)) if digits.len() == if generalized { 14 } else { 12 } => digits,
        _ => return Err(bad),
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let number = |range: std::ops::Range<usize>| {
        digits[range]
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
    };
    let (year, rest) = if generalized {
        (number(0..4), 4)
    } else {
        // RFC 5280: YY >= 50 is 19YY, otherwise 20YY.
        let yy = number(0..2);
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
    };
    let month = number(rest..rest + 2);
    let day = number(rest + 2..rest + 4);
    let hour = number(rest + 4..rest + 6);
    let minute = number(rest + 6..rest + 8);
    let second = number(rest + 8..rest + 10);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(bad);
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    Ok(if seconds >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
#[path = "der_tests.rs"]
mod tests;
