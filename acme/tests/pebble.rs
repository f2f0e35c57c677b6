//! End-to-end: reef-acme against a real pebble ACME server, which really
//! fetches every HTTP-01 answer from a real HTTP server on 127.0.0.1. Skips
//! (with a printed notice) only when pebble is not installed.

mod support;

use std::time::{Duration, Instant, SystemTime};

use reef_acme::testing::{Pebble, PebbleOptions};
use reef_acme::{
    certificate_validity, needs_renewal, Account, AcmeError, MemoryChallenges, DEFAULT_RENEW_BEFORE,
};
use support::{assert_verifies, domains, keys_match, start, Behaviour, RecordingSink};

#[tokio::test]
async fn issues_a_certificate_that_verifies_against_pebble_root() {
    let Some(env) = start(|_| {}).await else {
        return;
    };
    let (account, _) = Account::create(&env.pebble.acme_config()).await.unwrap();
    let names = domains(&["app.reef.test", "www.app.reef.test"]);

    let issued = account.issue(&names, &env.answers).await.unwrap();

    assert_eq!(issued.domains, names);
    let root = env.pebble.issuing_root_pem().await.unwrap();
    for name in &names {
        assert_verifies(&issued.chain_pem, &root, name).unwrap();
    }
    assert!(assert_verifies(&issued.chain_pem, &root, "other.reef.test").is_err());
    keys_match(&issued.chain_pem, &issued.key_pem);

    let (not_before, not_after) = certificate_validity(&issued.chain_pem).unwrap();
    assert_eq!(
        (not_before, not_after),
        (issued.not_before, issued.not_after)
    );
    let now = SystemTime::now();
    assert!(not_before <= now + Duration::from_secs(60) && now < not_after);
    assert!(!needs_renewal(not_after, now, DEFAULT_RENEW_BEFORE));

    // Pebble fetched both answers from the responder, and they are gone now.
    assert!(
        env.responder.requests() >= names.len(),
        "{}",
        env.responder.requests()
    );
    assert!(env.answers.is_empty());
}

#[tokio::test]
async fn an_account_loaded_from_its_credentials_issues_again() {
    let Some(env) = start(|options: &mut PebbleOptions| options.authz_reuse_percent = 100).await
    else {
        return;
    };
    let config = env.pebble.acme_config();
    let (created, credentials) = Account::create(&config).await.unwrap();
    created
        .issue(&domains(&["app.reef.test"]), &env.answers)
        .await
        .unwrap();
    let validations = env.responder.requests();
    drop(created);

    let loaded = Account::load(&config, &credentials).await.unwrap();
    let (again, _) = Account::create(&config).await.unwrap();
    assert_ne!(
        loaded.id(),
        again.id(),
        "a new account is a different account"
    );

    // The same account: pebble reuses its valid authorization, so no new validation.
    let reissued = loaded
        .issue(&domains(&["app.reef.test"]), &env.answers)
        .await
        .unwrap();
    assert_eq!(env.responder.requests(), validations);
    // A new name still needs (and gets) a real validation.
    let second = loaded
        .issue(&domains(&["api.reef.test"]), &env.answers)
        .await
        .unwrap();
    assert!(env.responder.requests() > validations);

    let root = env.pebble.issuing_root_pem().await.unwrap();
    assert_verifies(&reissued.chain_pem, &root, "app.reef.test").unwrap();
    assert_verifies(&second.chain_pem, &root, "api.reef.test").unwrap();
    keys_match(&second.chain_pem, &second.key_pem);
    assert_ne!(
        *reissued.key_pem, *second.key_pem,
        "every certificate gets its own key"
    );
    assert!(env.answers.is_empty());
}

#[tokio::test]
async fn an_unanswered_challenge_fails_naming_the_domain() {
    let Some(env) = start(|_| {}).await else {
        return;
    };
    let (account, _) = Account::create(&env.pebble.acme_config()).await.unwrap();
    // Published where the responder does not look: pebble gets 404.
    let sink = RecordingSink::new(MemoryChallenges::new(), Behaviour::Honest);

    let started = Instant::now();
    let err = account
        .issue(&domains(&["app.reef.test", "www.app.reef.test"]), &sink)
        .await
        .unwrap_err();
    eprintln!("issue failed as expected: {err}");

    assert!(started.elapsed() < account.config().timeout);
    match &err {
        AcmeError::ChallengeFailed { domain, detail } => {
            assert!(
                domain == "app.reef.test" || domain == "www.app.reef.test",
                "{err}"
            );
            assert!(detail.contains("404"), "{err}");
        }
        other => panic!("expected ChallengeFailed, got {other}"),
    }
    assert!(env.responder.requests() >= 1, "pebble must have tried");
    sink.assert_all_retracted(2);
}

#[tokio::test]
async fn a_wrong_key_authorization_fails_naming_the_domain() {
    let Some(env) = start(|_| {}).await else {
        return;
    };
    let (account, _) = Account::create(&env.pebble.acme_config()).await.unwrap();
    let sink = RecordingSink::new(env.answers.clone(), Behaviour::WrongAnswer);

    let err = account
        .issue(&domains(&["app.reef.test"]), &sink)
        .await
        .unwrap_err();
    eprintln!("issue failed as expected: {err}");

    match &err {
        AcmeError::ChallengeFailed { domain, .. } => assert_eq!(domain, "app.reef.test"),
        other => panic!("expected ChallengeFailed, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("app.reef.test") && message.contains("acme-challenge"),
        "{message}"
    );
    sink.assert_all_retracted(1);
    assert!(env.answers.is_empty());
}

#[tokio::test]
async fn a_failing_sink_fails_the_order_and_is_cleaned_up() {
    let Some(env) = start(|_| {}).await else {
        return;
    };
    let (account, _) = Account::create(&env.pebble.acme_config()).await.unwrap();
    let sink = RecordingSink::new(env.answers.clone(), Behaviour::Fail);

    let err = account
        .issue(&domains(&["app.reef.test"]), &sink)
        .await
        .unwrap_err();
    eprintln!("issue failed as expected: {err}");

    assert!(
        matches!(&err, AcmeError::Publish { domain, .. } if domain == "app.reef.test"),
        "{err}"
    );
    sink.assert_all_retracted(1);
    assert_eq!(env.responder.requests(), 0, "nothing was set ready");
}

#[tokio::test]
async fn a_stuck_sink_times_out_within_the_bound() {
    let Some(env) = start(|_| {}).await else {
        return;
    };
    let mut config = env.pebble.acme_config();
    config.timeout = Duration::from_secs(3);
    let (account, _) = Account::create(&config).await.unwrap();
    let sink = RecordingSink::new(env.answers.clone(), Behaviour::Hang);

    let started = Instant::now();
    let err = account
        .issue(&domains(&["app.reef.test"]), &sink)
        .await
        .unwrap_err();
    eprintln!("issue failed as expected: {err}");

    let elapsed = started.elapsed();
    assert!(
        elapsed >= config.timeout && elapsed < config.timeout + Duration::from_secs(2),
        "{elapsed:?}"
    );
    match &err {
        AcmeError::Timeout { action, .. } => {
            assert!(
                action.contains("publishing") && action.contains("app.reef.test"),
                "{err}"
            )
        }
        other => panic!("expected Timeout, got {other}"),
    }
    sink.assert_all_retracted(1);
}

#[tokio::test]
async fn pebble_requires_both_programs() {
    // Not a skip: documents what the other tests need, and fails if the check lies.
    let on_path = |program: &str| {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
    };
    assert_eq!(
        Pebble::installed(),
        on_path("pebble") && on_path("pebble-challtestsrv")
    );
}
