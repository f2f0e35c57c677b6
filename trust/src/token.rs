//! Join tokens: what a new machine needs to enroll, in one string. A token
//! holds the NATS URLs, the cluster's CA certificate and a short-lived
//! credential that may only ask to join, once, under the token's id; the
//! node then makes its own key and receives its own credential.
//!
//! `reef-join-1.` + base64url(JSON). The string is a secret until used.

use crate::TrustError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "reef-join-1.";
/// The longest token accepted; real ones are a few KiB.
const MAX_LEN: usize = 32 * 1024;

/// A join token's contents.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinToken {
    /// The token's id: the joining credential may call only as it.
    pub id: String,
    /// NATS server URLs.
    pub urls: Vec<String>,
    /// The cluster CA's certificate (PEM).
    pub ca_pem: String,
    /// The joining credential (a `.creds` file's text).
    pub creds: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id)
            .field("urls", &self.urls)
            .field("creds", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl JoinToken {
    pub fn encode(&self) -> Result<String, TrustError> {
        let json = serde_json::to_vec(self).map_err(|e| TrustError::Creds(e.to_string()))?;
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json)))
    }

    /// Reads a token, checking its shape; whether the cluster still takes
    /// it is the coordinator's question.
    pub fn decode(text: &str) -> Result<JoinToken, TrustError> {
        let bad = |why: &str| TrustError::Creds(format!("not a join token: {why}"));
        let text = text.trim();
        if text.len() > MAX_LEN {
            return Err(bad("longer than 32 KiB"));
        }
        let body = text.strip_prefix(PREFIX).ok_or_else(|| {
            bad("it does not start with reef-join-1. (`reef token create` prints one)")
        })?;
        let json = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| bad("it is not base64url after its prefix; was it cut short?"))?;
        let token: JoinToken =
            serde_json::from_slice(&json).map_err(|e| bad(&format!("its contents: {e}")))?;
        if token.urls.is_empty() {
            return Err(bad("it names no NATS URL"));
        }
        if !token.ca_pem.contains("BEGIN CERTIFICATE") {
            return Err(bad("it holds no CA certificate"));
        }
        let who = crate::identity::from_creds(&token.creds)?;
        if who.role != reef_proto::roles::Role::Joiner || who.name != token.id {
            return Err(bad("its credential is not this token's"));
        }
        Ok(token)
    }
}
