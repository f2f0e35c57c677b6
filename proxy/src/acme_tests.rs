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
    let response = answer(&challenges, &get("/.well-known/acme-challenge/tok-EN_1"))
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
    assert_eq!(text(response).await, "tok-EN_1.thumb-print_9");
}

#[tokio::test]
async fn unknown_removed_and_malformed_tokens_are_404() {
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
        let response = answer(&challenges, &get(path)).await.expect("answered");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn other_requests_are_left_alone() {
    let challenges = Challenges::default();
    challenges
        .insert("abc", "abc.xyz")
        .expect("valid challenge");
    assert!(answer(&challenges, &get("/")).await.is_none());
    assert!(answer(&challenges, &get("/.well-known/other/abc"))
        .await
        .is_none());
    let post = Request::builder()
        .method(Method::POST)
        .uri("/.well-known/acme-challenge/abc")
        .body(())
        .expect("request");
    assert!(answer(&challenges, &post).await.is_none());
    let head = Request::builder()
        .method(Method::HEAD)
        .uri("/.well-known/acme-challenge/abc")
        .body(())
        .expect("request");
    assert_eq!(
        answer(&challenges, &head).await.map(|r| r.status()),
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

/// A source that knows one answer, and one malformed answer.
struct Bucket;

impl ChallengeSource for Bucket {
    fn lookup<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>> {
        Box::pin(async move {
            match token {
                "late" => Some("late.thumb".to_string()),
                "forged" => Some("other.thumb".to_string()),
                _ => None,
            }
        })
    }
}

#[tokio::test]
async fn a_token_not_in_the_table_is_looked_up_in_the_source() {
    let challenges = Challenges::default();
    let path = "/.well-known/acme-challenge/late";
    let before = answer(&challenges, &get(path)).await.expect("answered");
    assert_eq!(before.status(), StatusCode::NOT_FOUND, "no source yet");
    challenges.set_source(Arc::new(Bucket));
    let response = answer(&challenges, &get(path)).await.expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "late.thumb");
    for missing in ["unknown", "forged"] {
        let path = format!("/.well-known/acme-challenge/{missing}");
        let response = answer(&challenges, &get(&path)).await.expect("answered");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}
