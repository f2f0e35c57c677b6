//! Publishing HTTP-01 challenge answers. The CA fetches
//! `http://DOMAIN/.well-known/acme-challenge/TOKEN` and expects the key
//! authorization as the body; whichever node the domain points at must be
//! able to answer, so the coordinator publishes answers through a
//! [`ChallengeSink`] (in reef, a NATS KV bucket every proxy reads) and the
//! proxies map request paths to tokens with [`challenge_token`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

/// The path prefix the CA requests challenge answers under; the token follows it.
pub const CHALLENGE_PATH_PREFIX: &str = "/.well-known/acme-challenge/";

/// What a [`ChallengeSink`] reports when it cannot publish or retract.
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where challenge answers go so that the CA can fetch them.
///
/// `publish` must make the answer reachable before it returns (the CA is told
/// to validate right after). `retract` is called once per published token
/// when the order ends, successfully or not; a sink should still let stale
/// entries expire (e.g. a TTL), since a dropped order future cannot retract.
pub trait ChallengeSink: Send + Sync {
    /// Serves `key_authorization` for `GET /.well-known/acme-challenge/{token}`.
    fn publish(
        &self,
        token: &str,
        key_authorization: &str,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Stops serving `token`.
    fn retract(&self, token: &str) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A [`ChallengeSink`] in memory: for a single process that serves its own
/// challenges, and for tests. Clones share the same answers.
#[derive(Clone, Debug, Default)]
pub struct MemoryChallenges {
    answers: Arc<Mutex<HashMap<String, String>>>,
}

impl MemoryChallenges {
    /// An empty set of answers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key authorization published for `token`, if any.
    pub fn get(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    /// The answer for a request path, if it is a challenge path with a published token.
    pub fn answer(&self, path: &str) -> Option<String> {
        challenge_token(path).and_then(|token| self.get(token))
    }

    /// How many answers are published now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no answer is published now.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // The map stays consistent even if a holder panicked: every change is one insert or remove.
        self.answers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ChallengeSink for MemoryChallenges {
    async fn publish(&self, token: &str, key_authorization: &str) -> Result<(), SinkError> {
        self.lock()
            .insert(token.to_string(), key_authorization.to_string());
        Ok(())
    }

    async fn retract(&self, token: &str) -> Result<(), SinkError> {
        self.lock().remove(token);
        Ok(())
    }
}

/// The longest token accepted in a request path. ACME tokens are 43
/// characters (256 bits of base64url); the margin allows other CAs' choices.
const MAX_TOKEN: usize = 256;

/// The token in a challenge request path (`/.well-known/acme-challenge/TOKEN`),
/// or `None` if the path is not one. Tokens are base64url text (RFC 8555 §8.3),
/// so anything else, including `..` or another `/`, is refused.
pub fn challenge_token(path: &str) -> Option<&str> {
    let token = path.strip_prefix(CHALLENGE_PATH_PREFIX)?;
    let plausible = !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then_some(token)
}

#[cfg(test)]
#[path = "challenge_tests.rs"]
mod tests;
