use super::*;
use http_body_util::BodyExt;

fn get(path: &str) -> Request<()> {
    Request::builder().uri(path).body(()).expect("request")
}

async fn text(response: Response<ProxyBody>) -> String {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn a_pending_token_is_answered_with_its_key_authorization() {
    let challenges = Challenges::default();
    challenges
        .insert("tok-EN_1", "tok-EN_1.thumb-print_9")
        .expect("valid challenge");
    let response =
        answer(&challenges, &get("/.well-known/acme-challenge/tok-EN_1")).expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
    assert_eq!(text(response).await, "tok-EN_1.thumb-print_9");
}

#[test]
fn unknown_removed_and_malformed_tokens_are_404() {
    let challenges = Challenges::default();
    challenges
        .insert("abc", "abc.xyz")
        .expect("valid challenge");
    assert!(challenges.remove("abc"));
    assert!(!challenges.remove("abc"));
    for path in [
        "/.well-known/acme-challenge/abc",
        "/.well-known/acme-challenge/",
        "/.well-known/acme-challenge/a.b",
        "/.well-known/acme-challenge/abc/def",
    ] {
        let response = answer(&challenges, &get(path)).expect("answered");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[test]
fn other_requests_are_left_alone() {
    let challenges = Challenges::default();
    challenges
        .insert("abc", "abc.xyz")
        .expect("valid challenge");
    assert!(answer(&challenges, &get("/")).is_none());
    assert!(answer(&challenges, &get("/.well-known/other/abc")).is_none());
    let post = Request::builder()
        .method(Method::POST)
        .uri("/.well-known/acme-challenge/abc")
        .body(())
        .expect("request");
    assert!(answer(&challenges, &post).is_none());
    let head = Request::builder()
        .method(Method::HEAD)
        .uri("/.well-known/acme-challenge/abc")
        .body(())
        .expect("request");
    assert_eq!(
        answer(&challenges, &head).map(|r| r.status()),
        Some(StatusCode::OK)
    );
}

#[test]
fn malformed_challenges_are_refused() {
    let challenges = Challenges::default();
    assert_eq!(
        challenges.insert("a/b", "a/b.x"),
        Err(ChallengeError::BadToken {
            token: "a/b".into()
        })
    );
    assert!(matches!(
        challenges.insert("", ".x"),
        Err(ChallengeError::BadToken { .. })
    ));
    for bad in ["abc", "abc.", "other.xyz", "abc.x y", "abc.x\n"] {
        assert_eq!(
            challenges.insert("abc", bad),
            Err(ChallengeError::BadKeyAuthorization {
                token: "abc".into()
            }),
            "{bad:?}"
        );
    }
}
