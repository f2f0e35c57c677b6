//! The certificate manager's decisions, without NATS or a CA.

use super::*;
use reef_proto::app::ArtifactRef;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn app(name: &str, version: u32, desired: AppDesired) -> AppRecord {
    AppRecord {
        name: name.into(),
        version,
        latest: version,
        replicas: 1,
        desired,
        proven: 0,
        revert_to: None,
        rollout_failure: None,
        halted: false,
        created_at_ms: 0,
        updated_at_ms: 0,
        maintenance: None,
    }
}

fn release(name: &str, version: u32, domains: &[&str]) -> Release {
    let list = domains
        .iter()
        .map(|d| format!("{d:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let manifest =
        format!("[app]\nname = {name:?}\ndomains = [{list}]\n[deploy]\ncommand = [\"x\"]\n");
    Release {
        app: name.into(),
        version,
        artifact: ArtifactRef {
            digest: "0".repeat(64),
            size: 1,
        },
        spec: reef_proto::manifest::parse(&manifest).expect("manifest"),
        created_at_ms: 0,
        copied_from: None,
    }
}

fn cert(domains: &[&str], source: CertSource, not_after: SystemTime) -> CertRecord {
    CertRecord {
        domains: domains.iter().map(|d| d.to_string()).collect(),
        chain_pem: String::new(),
        not_before_ms: 0,
        not_after_ms: millis(not_after),
        source,
        stored_key: Vec::new(),
        sealed_keys: BTreeMap::new(),
        updated_at_ms: 0,
    }
}

#[test]
fn only_running_apps_at_their_current_release_want_domains() {
    let apps = vec![
        app("web", 2, AppDesired::Running),
        app("old", 1, AppDesired::Stopped),
        app("lagging", 3, AppDesired::Running),
        app("shared", 1, AppDesired::Running),
    ];
    let releases = BTreeMap::from([
        (
            "web".to_string(),
            release("web", 2, &["a.example.com", "b.example.com"]),
        ),
        ("old".to_string(), release("old", 1, &["old.example.com"])),
        (
            "lagging".to_string(),
            release("lagging", 2, &["lag.example.com"]),
        ),
        (
            "shared".to_string(),
            release("shared", 1, &["a.example.com"]),
        ),
    ]);
    let wanted = wanted_domains(&apps, &releases);
    assert_eq!(
        wanted.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["a.example.com", "b.example.com"]
    );
    assert_eq!(wanted["a.example.com"], "web");
}

#[test]
fn a_path_route_wants_its_hosts_certificate_and_a_wildcard_none() {
    let apps = vec![
        app("api", 1, AppDesired::Running),
        app("tenants", 1, AppDesired::Running),
    ];
    let releases = BTreeMap::from([
        (
            "api".to_string(),
            release("api", 1, &["shop.example.com/api"]),
        ),
        (
            "tenants".to_string(),
            release("tenants", 1, &["*.shop.example.com"]),
        ),
    ]);
    let wanted = wanted_domains(&apps, &releases);
    assert_eq!(
        wanted.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["shop.example.com"]
    );
}

#[test]
fn a_domain_needs_a_certificate_until_one_covers_it() {
    let now = SystemTime::now();
    let renew = reef_acme::DEFAULT_RENEW_BEFORE;
    assert_eq!(need("a.example.com", &[], now, renew), Some(Need::Missing));

    let fresh = cert(&["a.example.com"], CertSource::Acme, now + 80 * DAY);
    assert_eq!(
        need("a.example.com", std::slice::from_ref(&fresh), now, renew),
        None
    );
    assert_eq!(
        need("b.example.com", &[fresh], now, renew),
        Some(Need::Missing)
    );

    let ageing = cert(&["a.example.com"], CertSource::Acme, now + 10 * DAY);
    assert_eq!(
        need("a.example.com", std::slice::from_ref(&ageing), now, renew),
        Some(Need::Renewal)
    );
    let renewed = cert(&["a.example.com"], CertSource::Acme, now + 89 * DAY);
    assert_eq!(need("a.example.com", &[ageing, renewed], now, renew), None);
}

#[test]
fn an_operators_certificate_wins_until_it_expires() {
    let now = SystemTime::now();
    let renew = reef_acme::DEFAULT_RENEW_BEFORE;
    // Close to expiry, but not expired: reef does not order over it.
    let wildcard = cert(&["*.example.com"], CertSource::File, now + 5 * DAY);
    assert_eq!(need("a.example.com", &[wildcard], now, renew), None);
    let expired = cert(&["*.example.com"], CertSource::File, now - DAY);
    assert_eq!(
        need("a.example.com", &[expired], now, renew),
        Some(Need::Missing)
    );
}

#[test]
fn expired_acme_certificates_nobody_wants_are_dropped() {
    let now = SystemTime::now();
    let certs = vec![
        (
            "gone.example.com".to_string(),
            cert(&["gone.example.com"], CertSource::Acme, now - DAY),
        ),
        (
            "live.example.com".to_string(),
            cert(&["live.example.com"], CertSource::Acme, now - DAY),
        ),
        (
            "valid.example.com".to_string(),
            cert(&["valid.example.com"], CertSource::Acme, now + DAY),
        ),
        (
            "file.example.com".to_string(),
            cert(&["file.example.com"], CertSource::File, now - DAY),
        ),
    ];
    let wanted = BTreeMap::from([("live.example.com".to_string(), "live".to_string())]);
    assert_eq!(
        expired_and_unwanted(&certs, &wanted, now),
        vec!["gone.example.com"]
    );
}

#[test]
fn reseal_adds_new_nodes_and_drops_departed_ones() {
    let (a, b, c) = (NodeId::new(), NodeId::new(), NodeId::new());
    let mut record = cert(&["a.example.com"], CertSource::File, SystemTime::now());
    record.sealed_keys.insert(a, vec![1]);
    record.sealed_keys.insert(b, vec![2]);
    let plan = reseal(&record, &BTreeSet::from([a, c]));
    assert_eq!(plan.missing, vec![c]);
    assert_eq!(plan.extra, vec![b]);
    assert!(reseal(&record, &BTreeSet::from([a, b])).is_empty());
}

#[test]
fn retries_back_off_to_an_hour() {
    assert_eq!(retry_delay(1), FIRST_RETRY);
    assert_eq!(retry_delay(2), FIRST_RETRY * 2);
    assert_eq!(retry_delay(3), FIRST_RETRY * 4);
    assert_eq!(retry_delay(50), MAX_RETRY);
    assert_eq!(retry_delay(u32::MAX), MAX_RETRY);
}
