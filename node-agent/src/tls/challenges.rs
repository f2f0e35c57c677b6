//! The ACME challenge answers the leader publishes while the CA validates an
//! order, fed to the proxy, which answers them on plain HTTP for any host.
//! An answer goes when its key is deleted, or after [`MAX_AGE`] (the bucket
//! drops old entries silently, so the node drops them by itself too). A token
//! the watch has not delivered yet is read from the bucket directly
//! ([`BucketSource`]), so the CA may validate the moment an answer is stored.

use super::follow::{Change, Follower};
use reef_proto::certs::AcmeChallenge;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long an answer is served at most; the bucket keeps entries as long.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(600);

/// Reads answers straight from the challenges bucket, for the proxy to use
/// when a token is not in its table yet.
pub(crate) struct BucketSource {
    js: async_nats::jetstream::Context,
    bucket: tokio::sync::OnceCell<async_nats::jetstream::kv::Store>,
}

impl BucketSource {
    pub(crate) fn new(js: async_nats::jetstream::Context) -> Self {
        Self {
            js,
            bucket: tokio::sync::OnceCell::new(),
        }
    }

    async fn lookup_token(&self, token: &str) -> Option<String> {
        let bucket = self
            .bucket
            .get_or_try_init(|| {
                self.js
                    .get_key_value(reef_proto::subjects::CHALLENGES_BUCKET)
            })
            .await
            .ok()?;
        let bytes = bucket.get(token).await.ok()??;
        let answer = reef_proto::decode::<AcmeChallenge>(&bytes).ok()?;
        (answer.token == token).then_some(answer.key_authorization)
    }
}

impl reef_proxy::ChallengeSource for BucketSource {
    fn lookup<'a>(
        &'a self,
        token: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send + 'a>> {
        Box::pin(self.lookup_token(token))
    }
}

/// Keeps the proxy's challenges in step with the challenges bucket.
pub(crate) struct ChallengeFollower {
    challenges: reef_proxy::Challenges,
    seen: HashMap<String, Instant>,
}

impl ChallengeFollower {
    pub(crate) fn new(challenges: reef_proxy::Challenges) -> Self {
        Self {
            challenges,
            seen: HashMap::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        let challenges = &self.challenges;
        self.seen.retain(|token, seen| {
            let keep = now.duration_since(*seen) < MAX_AGE;
            if !keep {
                challenges.remove(token);
            }
            keep
        });
    }
}

impl Follower for ChallengeFollower {
    fn apply(&mut self, key: &str, change: Change<'_>) {
        match change {
            Change::Put { value, .. } => {
                let answer = match reef_proto::decode::<AcmeChallenge>(value) {
                    Ok(answer) if answer.token == key => answer,
                    Ok(_) => {
                        tracing::warn!(%key, "dropping a challenge stored under another token");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%key, error = %e, "dropping a malformed challenge");
                        return;
                    }
                };
                match self
                    .challenges
                    .insert(answer.token, answer.key_authorization)
                {
                    Ok(()) => {
                        tracing::debug!(token = %key, "answering an ACME challenge");
                        self.seen.insert(key.to_string(), Instant::now());
                    }
                    Err(e) => tracing::warn!(%key, error = %e, "dropping a challenge"),
                }
            }
            Change::Removed => {
                self.challenges.remove(key);
                self.seen.remove(key);
            }
        }
    }

    fn tick(&mut self) {
        self.expire(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(follower: &mut ChallengeFollower, token: &str, key_authorization: &str) {
        let bytes = reef_proto::encode(&AcmeChallenge {
            token: token.into(),
            key_authorization: key_authorization.into(),
            published_at_ms: 0,
        })
        .expect("encode");
        follower.apply(
            token,
            Change::Put {
                revision: 1,
                value: &bytes,
            },
        );
    }

    /// Whether the follower holds `token` as served.
    fn answered(follower: &ChallengeFollower, token: &str) -> bool {
        follower.seen.contains_key(token)
    }

    #[test]
    fn answers_come_and_go_with_the_bucket() {
        let mut follower = ChallengeFollower::new(reef_proxy::Challenges::default());
        put(&mut follower, "tok-1_A", "tok-1_A.thumb");
        put(&mut follower, "tok-2", "tok-2.thumb");
        assert!(answered(&follower, "tok-1_A"));
        assert!(
            follower.challenges.clone().remove("tok-2"),
            "the proxy has it"
        );
        follower.apply("tok-1_A", Change::Removed);
        assert!(!answered(&follower, "tok-1_A"));
        assert!(
            !follower.challenges.remove("tok-1_A"),
            "the proxy forgot it too"
        );
    }

    #[test]
    fn malformed_or_misplaced_answers_are_dropped() {
        let mut follower = ChallengeFollower::new(reef_proxy::Challenges::default());
        put(&mut follower, "tok", "other.thumb");
        assert!(!answered(&follower, "tok"), "not TOKEN.THUMBPRINT");
        follower.apply(
            "tok",
            Change::Put {
                revision: 1,
                value: b"junk",
            },
        );
        assert!(!answered(&follower, "tok"));
        let bytes = reef_proto::encode(&AcmeChallenge {
            token: "a".into(),
            key_authorization: "a.b".into(),
            published_at_ms: 0,
        })
        .expect("encode");
        follower.apply(
            "b",
            Change::Put {
                revision: 1,
                value: &bytes,
            },
        );
        assert!(!answered(&follower, "a") && !answered(&follower, "b"));
    }

    #[test]
    fn old_answers_expire() {
        let mut follower = ChallengeFollower::new(reef_proxy::Challenges::default());
        put(&mut follower, "tok", "tok.thumb");
        follower.expire(Instant::now() + MAX_AGE);
        assert!(!answered(&follower, "tok"));
        assert!(
            !follower.challenges.remove("tok"),
            "the proxy forgot it too"
        );
    }
}
