//! Tests for challenge paths and the in-memory sink.

use super::*;
use proptest::prelude::*;

#[test]
fn tokens_from_paths() {
    let token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
    assert_eq!(
        challenge_token(&format!("{CHALLENGE_PATH_PREFIX}{token}")),
        Some(token)
    );
    for path in [
        "/",
        "/.well-known/acme-challenge/",
        "/.well-known/acme-challenge",
        "/.well-known/acme-challenge/../secret",
        "/.well-known/acme-challenge/a/b",
        "/.well-known/acme-challenge/a.b",
        "/.well-known/acme-challenge/a%2Fb",
        "/.well-known/acme-challenge/abc?x=1",
        "/well-known/acme-challenge/abc",
        "//.well-known/acme-challenge/abc",
    ] {
        assert_eq!(challenge_token(path), None, "{path}");
    }
    let long = format!("{CHALLENGE_PATH_PREFIX}{}", "a".repeat(257));
    assert_eq!(challenge_token(&long), None);
}

#[tokio::test]
async fn memory_sink_publishes_and_retracts() {
    let sink = MemoryChallenges::new();
    let view = sink.clone();
    assert!(view.is_empty());
    sink.publish("tok-1", "tok-1.thumb").await.unwrap();
    sink.publish("tok-2", "tok-2.thumb").await.unwrap();
    assert_eq!(view.len(), 2);
    assert_eq!(view.get("tok-1").as_deref(), Some("tok-1.thumb"));
    assert_eq!(
        view.answer("/.well-known/acme-challenge/tok-2").as_deref(),
        Some("tok-2.thumb")
    );
    assert_eq!(view.answer("/tok-2"), None);
    sink.retract("tok-1").await.unwrap();
    sink.retract("never-published").await.unwrap();
    assert_eq!(view.get("tok-1"), None);
    assert_eq!(view.len(), 1);
}

proptest! {
    #[test]
    fn base64url_tokens_round_trip(token in "[A-Za-z0-9_-]{1,256}") {
        let path = format!("{CHALLENGE_PATH_PREFIX}{token}");
        prop_assert_eq!(challenge_token(&path), Some(token.as_str()));
    }

    #[test]
    fn accepted_tokens_are_plain(path in "/\\.well-known/acme-challenge/.{0,40}") {
        if let Some(token) = challenge_token(&path) {
            prop_assert!(!token.is_empty());
            prop_assert!(!token.contains('/') && !token.contains('.') && !token.contains('%'));
        }
    }
}
