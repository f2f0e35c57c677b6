//! What the certificate manager should do, as pure functions over the
//! cluster's state: which domains want a certificate, which of them need one
//! ordered now, which stored certificates must be sealed for more (or fewer)
//! nodes, and how long to wait after a failure.

use reef_proto::app::{AppDesired, AppRecord, Release};
use reef_proto::certs::{CertRecord, CertSource};
use reef_proto::route_domain::RouteDomain;
use reef_proto::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first wait after a failed order; it doubles on each failure in a row.
/// Two minutes keeps a domain that keeps failing under Let's Encrypt's limit
/// of 5 failed validations per hour.
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(120);
/// The longest wait between two attempts for one domain.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(3600);

/// Every domain of every app that should be running, with the app that
/// lists it (the first one, by name, if several do). `releases` holds each
/// app's current release where it could be read.
pub(crate) fn wanted_domains(
    apps: &[AppRecord],
    releases: &BTreeMap<String, Release>,
) -> BTreeMap<String, String> {
    let mut wanted = BTreeMap::new();
    for app in apps {
        if app.desired != AppDesired::Running {
            continue;
        }
        let Some(release) = releases.get(&app.name) else {
            continue;
        };
        if release.version != app.version {
            continue;
        }
        for domain in &release.spec.domains {
            // A certificate is for a host, whatever path prefixes route on
            // it; a wildcard host needs a certificate added from files
            // (HTTP-01 cannot prove one).
            let route = RouteDomain::split(domain);
            if route.is_wildcard() {
                continue;
            }
            wanted.entry(route.host).or_insert_with(|| app.name.clone());
        }
    }
    wanted
}

/// Why a domain needs a certificate ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// No usable certificate covers it.
    Missing,
    /// Its ACME certificate expires within the renewal window.
    Renewal,
}

/// Whether `domain` needs an ACME certificate now, given every stored
/// certificate. A certificate added from files that covers it and has not
/// expired wins: reef never orders over an operator's certificate. An ACME
/// certificate is renewed `renew_before` its expiry.
pub(crate) fn need(
    domain: &str,
    certs: &[CertRecord],
    now: SystemTime,
    renew_before: Duration,
) -> Option<Need> {
    let now_ms = millis(now);
    let file_cert = certs
        .iter()
        .any(|c| c.source == CertSource::File && c.covers(domain) && c.not_after_ms > now_ms);
    if file_cert {
        return None;
    }
    let acme = certs
        .iter()
        .filter(|c| c.source == CertSource::Acme && c.covers(domain))
        .map(|c| c.not_after_ms)
        .max();
    match acme {
        None => Some(Need::Missing),
        Some(not_after_ms) => {
            let not_after = UNIX_EPOCH + Duration::from_millis(not_after_ms);
            reef_acme::needs_renewal(not_after, now, renew_before).then_some(Need::Renewal)
        }
    }
}

/// ACME certificates that nobody wants any more and that have expired: they
/// can go. (Unwanted but still valid ones stay, for an app deployed again.)
pub(crate) fn expired_and_unwanted<'a>(
    certs: &'a [(String, CertRecord)],
    wanted: &BTreeMap<String, String>,
    now: SystemTime,
) -> Vec<&'a str> {
    let now_ms = millis(now);
    certs
        .iter()
        .filter(|(_, c)| c.source == CertSource::Acme && c.not_after_ms <= now_ms)
        .filter(|(_, c)| !c.domains.iter().any(|d| wanted.contains_key(d)))
        .map(|(key, _)| key.as_str())
        .collect()
}

/// Which nodes a certificate must still be sealed to, and which copies are
/// for nodes no longer registered.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Reseal {
    pub missing: Vec<NodeId>,
    pub extra: Vec<NodeId>,
}

impl Reseal {
    pub(crate) fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compares the nodes a certificate is sealed to with the registered ones.
pub(crate) fn reseal(record: &CertRecord, nodes: &BTreeSet<NodeId>) -> Reseal {
    Reseal {
        missing: nodes
            .iter()
            .filter(|n| !record.sealed_keys.contains_key(n))
            .copied()
            .collect(),
        extra: record
            .sealed_keys
            .keys()
            .filter(|n| !nodes.contains(n))
            .copied()
            .collect(),
    }
}

/// How long to wait before the next attempt after `failures` failures in a row.
pub(crate) fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

/// Milliseconds since the epoch (0 before it).
pub(crate) fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
