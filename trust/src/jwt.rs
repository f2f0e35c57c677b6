//! NATS JWTs (version 2), written and read the way nats-server expects:
//! `base64url(header).base64url(claims).base64url(ed25519 signature)`, the
//! header `{"typ":"JWT","alg":"ed25519-nkey"}`, the issuer an nkey whose
//! signature covers the first two parts.
//!
//! Only the claims reef uses are modelled; unknown fields in a JWT read back
//! are ignored, so a JWT another tool wrote still decodes.

use crate::TrustError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use nkeys::KeyPair;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;
/// The longest JWT accepted when reading one; real ones are a few KiB.
const MAX_LEN: usize = 64 * 1024;

/// The claims every JWT has, around a kind-specific `nats` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims<N> {
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub iat: u64,
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub name: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    pub nats: N,
}

/// An operator: the root every account JWT is signed by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    #[serde(default)]
    pub system_account: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u8,
}

/// An account: its limits, the keys that may sign its users, and the users
/// it has revoked (public key → revoked are JWTs issued at or before this
/// second).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub limits: AccountLimits,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, u64>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u8,
}

/// An account's limits; -1 is unlimited. JetStream is on for the account
/// when either storage limit is not 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountLimits {
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    pub imports: i64,
    pub exports: i64,
    pub wildcards: bool,
    pub conn: i64,
    pub leaf: i64,
    pub mem_storage: i64,
    pub disk_storage: i64,
    pub streams: i64,
    pub consumer: i64,
}

/// A user: what it may publish and subscribe to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(rename = "pub", default)]
    pub publish: Permission,
    #[serde(rename = "sub", default)]
    pub subscribe: Permission,
    /// Whether the user may answer requests (publish to the reply subject
    /// of a message it received) although its `pub` list does not allow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<Responses>,
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    /// The account a signing key signed this user for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer_account: String,
    /// Reef's own facts about the user: `role:<role>`, `node:<id>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u8,
}

/// Subjects allowed and denied; an empty allow list allows everything not
/// denied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Permission {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// Allowed responses to requests received.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Responses {
    pub max: i64,
    /// Nanoseconds; 0 is no limit.
    pub ttl: i64,
}

/// Signs `claims` with `signer`, setting `iss` and `jti`.
pub fn encode<N: Serialize>(
    claims: &mut Claims<N>,
    signer: &KeyPair,
) -> Result<String, TrustError> {
    claims.iss = signer.public_key();
    claims.jti = String::new();
    let unsigned = serde_json::to_vec(claims).map_err(|e| TrustError::Jwt(e.to_string()))?;
    claims.jti = data_encoding::BASE32_NOPAD.encode(&Sha256::digest(&unsigned));
    let body = serde_json::to_vec(claims).map_err(|e| TrustError::Jwt(e.to_string()))?;
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(body)
    );
    let signature = signer
        .sign(signed.as_bytes())
        .map_err(|e| TrustError::Key(e.to_string()))?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Reads a JWT, checking its shape and that its issuer's signature holds.
/// Whether that issuer is one the caller trusts is the caller's question.
pub fn decode<N: DeserializeOwned>(jwt: &str) -> Result<Claims<N>, TrustError> {
    let bad = |why: &str| TrustError::Jwt(why.to_string());
    if jwt.len() > MAX_LEN {
        return Err(bad("longer than 64 KiB"));
    }
    let mut parts = jwt.trim().split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected three parts separated by '.'"));
    };
    let header_json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| bad("the header is not base64url"))?;
    let header_value: serde_json::Value =
        serde_json::from_slice(&header_json).map_err(|_| bad("the header is not JSON"))?;
    if header_value["alg"] != "ed25519-nkey" {
        return Err(bad("the algorithm is not ed25519-nkey"));
    }
    let body_json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| bad("the claims are not base64url"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| bad("the signature is not base64url"))?;
    let claims: Claims<N> = serde_json::from_slice(&body_json)
        .map_err(|e| TrustError::Jwt(format!("the claims do not decode: {e}")))?;
    let issuer = KeyPair::from_public_key(&claims.iss)
        .map_err(|_| bad("the issuer is not an nkey public key"))?;
    let signed_len = header.len() + 1 + body.len();
    issuer
        .verify(&jwt.trim().as_bytes()[..signed_len], &signature)
        .map_err(|_| bad("the signature does not match its issuer"))?;
    Ok(claims)
}

/// Builds an operator JWT naming the system account.
pub fn operator(
    name: &str,
    key: &KeyPair,
    system_account: &str,
    now: u64,
) -> Result<String, TrustError> {
    let mut claims = Claims {
        jti: String::new(),
        iat: now,
        iss: String::new(),
        name: name.to_string(),
        sub: key.public_key(),
        exp: None,
        nats: Operator {
            signing_keys: Vec::new(),
            system_account: system_account.to_string(),
            kind: "operator".into(),
            version: 2,
        },
    };
    encode(&mut claims, key)
}

/// An account's claims, to be signed by the operator.
pub fn account_claims(
    name: &str,
    account: &str,
    signing_keys: Vec<String>,
    limits: AccountLimits,
    now: u64,
) -> Claims<Account> {
    Claims {
        jti: String::new(),
        iat: now,
        iss: String::new(),
        name: name.to_string(),
        sub: account.to_string(),
        exp: None,
        nats: Account {
            limits,
            signing_keys,
            revocations: BTreeMap::new(),
            kind: "account".into(),
            version: 2,
        },
    }
}
