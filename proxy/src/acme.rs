//! ACME HTTP-01 challenges (RFC 8555, section 8.3): while the agent orders a
//! certificate, the CA fetches `http://HOST/.well-known/acme-challenge/TOKEN`
//! and expects the key authorization back. The plain-HTTP listener answers
//! those for every host, before routing and before any HTTPS redirect, so an
//! app that redirects (or a host not routed yet) can still get its certificate.
//!
//! A token not (yet) in the table is looked up in the [`ChallengeSource`] the
//! agent sets (the cluster's challenges bucket), so the CA may fetch an answer
//! the moment it is stored, before this node's copy of the table has it.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};

use crate::body::{full, ProxyBody};

/// Where challenges are fetched from.
pub(crate) const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Why a challenge was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChallengeError {
    /// Tokens are base64url text (RFC 8555, section 8.3).
    #[error("{token:?} is not an ACME token (base64url characters only)")]
    BadToken { token: String },
    /// A key authorization is `TOKEN.THUMBPRINT`, both base64url (RFC 8555, section 8.1).
    #[error("the key authorization for {token} is not `{token}.THUMBPRINT`")]
    BadKeyAuthorization { token: String },
}

/// How long a lookup in the [`ChallengeSource`] may take before the answer is 404.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where answers not in the table are looked up: the key authorization for a
/// token, or None.
pub trait ChallengeSource: Send + Sync {
    fn lookup<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;
}

/// The pending challenges: token → key authorization. Cheap to clone (Arc inside).
#[derive(Clone, Default)]
pub struct Challenges {
    tokens: Arc<RwLock<HashMap<String, String>>>,
    source: Arc<OnceLock<Arc<dyn ChallengeSource>>>,
}

impl Challenges {
    /// Answers `token` with `key_authorization` until it is removed.
    pub fn insert(
        &self,
        token: impl Into<String>,
        key_authorization: impl Into<String>,
    ) -> Result<(), ChallengeError> {
        let token = token.into();
        let key_authorization = key_authorization.into();
        if !is_base64url(&token) {
            return Err(ChallengeError::BadToken { token });
        }
        if !is_key_authorization(&token, &key_authorization) {
            return Err(ChallengeError::BadKeyAuthorization { token });
        }
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token, key_authorization);
        Ok(())
    }

    /// Stops answering `token`; true if it was there.
    pub fn remove(&self, token: &str) -> bool {
        self.tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token)
            .is_some()
    }

    /// Sets where tokens missing from the table are looked up (once; later calls are ignored).
    pub fn set_source(&self, source: Arc<dyn ChallengeSource>) {
        let _ = self.source.set(source);
    }

    /// The key authorization for `token`: from the table, else from the
    /// source (a malformed answer from there counts as none).
    async fn key_authorization(&self, token: &str) -> Option<String> {
        let known = self
            .tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned();
        if known.is_some() {
            return known;
        }
        let source = self.source.get()?;
        let found = tokio::time::timeout(SOURCE_TIMEOUT, source.lookup(token))
            .await
            .ok()
            .flatten()?;
        is_key_authorization(token, &found).then_some(found)
    }
}

impl fmt::Debug for Challenges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pending = self
            .tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Challenges")
            .field("pending", &pending)
            .finish()
    }
}

/// The answer to `request` if it fetches a challenge (GET or HEAD under
/// `/.well-known/acme-challenge/`): 200 with the key authorization, or 404
/// for a token that is not pending. None for any other request.
pub(crate) async fn answer<B>(
    challenges: &Challenges,
    request: &Request<B>,
) -> Option<Response<ProxyBody>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return None;
    }
    let token = request.uri().path().strip_prefix(CHALLENGE_PREFIX)?;
    let found = if is_base64url(token) {
        challenges.key_authorization(token).await
    } else {
        None
    };
    let (status, body) = match found {
        Some(key_authorization) => (StatusCode::OK, key_authorization),
        None => (StatusCode::NOT_FOUND, "no such ACME challenge\n".to_owned()),
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(response)
}

/// `TOKEN.THUMBPRINT`, both base64url (RFC 8555, section 8.1).
fn is_key_authorization(token: &str, key_authorization: &str) -> bool {
    key_authorization
        .strip_prefix(token)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(is_base64url)
}

/// Non-empty and only `A-Z a-z 0-9 - _` (base64url without padding).
fn is_base64url(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
#[path = "acme_tests.rs"]
mod tests;
