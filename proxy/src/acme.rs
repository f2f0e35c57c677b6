//! ACME HTTP-01 challenges (RFC 8555, section 8.3): while the agent orders a
//! certificate, the CA fetches `http://HOST/.well-known/acme-challenge/TOKEN`
//! and expects the key authorization back. The plain-HTTP listener answers
//! those for every host, before routing and before any HTTPS redirect, so an
//! app that redirects (or a host not routed yet) can still get its certificate.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};

use crate::body::{full, ProxyBody};

/// Where challenges are fetched from.
const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

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

/// The pending challenges: token → key authorization. Cheap to clone (Arc inside).
#[derive(Clone, Default)]
pub struct Challenges {
    tokens: Arc<RwLock<HashMap<String, String>>>,
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
        let well_formed = key_authorization
            .strip_prefix(token.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(is_base64url);
        if !well_formed {
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

    /// The key authorization for `token`, if it is pending.
    fn key_authorization(&self, token: &str) -> Option<String> {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
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
pub(crate) fn answer<B>(
    challenges: &Challenges,
    request: &Request<B>,
) -> Option<Response<ProxyBody>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return None;
    }
    let token = request.uri().path().strip_prefix(CHALLENGE_PREFIX)?;
    let found = is_base64url(token)
        .then(|| challenges.key_authorization(token))
        .flatten();
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
