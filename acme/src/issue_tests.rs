//! Tests for the offline parts of an order: the domain checks, the problem
//! text and the polling backoff. The order itself is tested against pebble
//! in `tests/pebble.rs`.

use super::*;
use crate::domain::InvalidDomain;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| name.to_string()).collect()
}

#[test]
fn domain_lists() {
    assert!(check_domains(&names(&["app.reef.test", "www.app.reef.test"])).is_ok());
    assert!(matches!(check_domains(&[]), Err(AcmeError::NoDomains)));
    assert!(matches!(
        check_domains(&names(&["app.reef.test", "www.app.reef.test", "app.reef.test"])),
        Err(AcmeError::DuplicateDomain { domain }) if domain == "app.reef.test"
    ));
    assert!(matches!(
        check_domains(&names(&["app.reef.test", "*.reef.test"])),
        Err(AcmeError::InvalidDomain(InvalidDomain::Wildcard { .. }))
    ));
    let many: Vec<String> = (0..=MAX_DOMAINS)
        .map(|i| format!("a{i}.reef.test"))
        .collect();
    assert!(matches!(
        check_domains(&many),
        Err(AcmeError::TooManyDomains {
            count: 101,
            max: 100
        })
    ));
    assert!(check_domains(&many[..MAX_DOMAINS]).is_ok());
}

#[test]
fn problems_read_as_one_line() {
    let problem: Problem = serde_json::from_str(
        r#"{"type":"urn:ietf:params:acme:error:unauthorized","detail":"The key authorization file did not match","status":403}"#,
    )
    .unwrap();
    assert_eq!(
        describe(&problem),
        "The key authorization file did not match (urn:ietf:params:acme:error:unauthorized)"
    );
    let bare: Problem = serde_json::from_str("{}").unwrap();
    assert_eq!(describe(&bare), "no detail given");
    let nested: Problem = serde_json::from_str(
        r#"{"detail":"two names failed","subproblems":[{"identifier":{"type":"dns","value":"app.reef.test"},"detail":"connection refused"}]}"#,
    )
    .unwrap();
    let text = describe(&nested);
    assert!(
        text.starts_with("two names failed; ")
            && text.contains("app.reef.test")
            && text.contains("connection refused"),
        "{text}"
    );
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let mut backoff = Backoff::new();
    let delays: Vec<u128> = (0..7).map(|_| backoff.next_delay().as_millis()).collect();
    assert_eq!(delays, [250, 500, 1000, 2000, 4000, 4000, 4000]);
}

/// Compiles only if the coordinator can spawn these futures on a multi-threaded runtime.
#[allow(dead_code)]
fn futures_are_send(account: &Account, sink: &crate::MemoryChallenges, config: &crate::AcmeConfig) {
    fn send<T: Send>(_: T) {}
    send(account.issue(&[], sink));
    send(Account::create(config));
    send(Account::load(config, ""));
}
