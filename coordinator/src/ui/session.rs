//! The dashboard's sessions and sign-in links, as pure functions: a
//! session cookie is `<user>.<role>.<expiry ms>.<HMAC-SHA256 hex>` under a
//! key every coordinator shares, so any coordinator checks what another
//! signed; a link's token is random and only its hash is stored.

use reef_proto::roles::Role;
use sha2::{Digest, Sha256};

/// The cookie that carries a session.
pub(crate) const COOKIE: &str = "reef_session";
/// How long a session lasts after sign-in.
pub(crate) const SESSION_MS: u64 = 12 * 3600 * 1000;

/// The key sessions are signed with.
#[derive(Clone)]
pub(crate) struct SessionKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// Who a session is for, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) role: Role,
    pub(crate) expires_at_ms: u64,
}

/// Why a cookie was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CookieRefused {
    /// the session cookie is malformed
    #[error("the session cookie is malformed")]
    Malformed,
    /// the session cookie's signature does not match: it was forged or altered
    #[error("the session cookie's signature does not match: it was forged or altered")]
    Forged,
    /// the session expired
    #[error("the session expired: sign in again with `reef ui`")]
    Expired,
    /// the session's user was removed
    #[error("the session's user was removed from the cluster")]
    Revoked,
    /// the session could not be checked
    #[error("the session could not be checked now: try again")]
    Unchecked,
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub(crate) fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A name as it may stand in a cookie and a subject: letters, digits, `-`, `_`.
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The cookie's value for `session`.
pub(crate) fn seal(key: &SessionKey, session: &Session) -> String {
    let body = format!(
        "{}.{}.{}",
        session.user,
        session.role.as_str(),
        session.expires_at_ms
    );
    let mac = hmac(&key.0, body.as_bytes());
    format!("{body}.{}", hex(&mac))
}

/// The session a cookie's value carries, if `key` signed it and it has not
/// expired at `now_ms`. Only user roles are accepted.
pub(crate) fn open(key: &SessionKey, value: &str, now_ms: u64) -> Result<Session, CookieRefused> {
    let parts: Vec<&str> = value.split('.').collect();
    let [user, role, expires, mac] = parts[..] else {
        return Err(CookieRefused::Malformed);
    };
    if !is_token(user) || mac.len() != 64 {
        return Err(CookieRefused::Malformed);
    }
    let body = &value[..value.len() - mac.len() - 1];
    let expected = hex(&hmac(&key.0, body.as_bytes()));
    if !same(expected.as_bytes(), mac.as_bytes()) {
        return Err(CookieRefused::Forged);
    }
    let role = Role::parse(role).map_err(|_| CookieRefused::Malformed)?;
    if !Role::USERS.contains(&role) {
        return Err(CookieRefused::Malformed);
    }
    let expires_at_ms: u64 = expires.parse().map_err(|_| CookieRefused::Malformed)?;
    if expires_at_ms <= now_ms {
        return Err(CookieRefused::Expired);
    }
    Ok(Session {
        user: user.to_string(),
        role,
        expires_at_ms,
    })
}

/// The token a session's forms must carry (`x-reef-csrf`): bound to the
/// cookie, so a page on another site can neither read nor guess it.
pub(crate) fn csrf(key: &SessionKey, cookie: &str) -> String {
    hex(&hmac(&key.0, format!("csrf:{cookie}").as_bytes()))
}

/// Whether `given` is the CSRF token of `cookie`.
pub(crate) fn csrf_matches(key: &SessionKey, cookie: &str, given: &str) -> bool {
    same(csrf(key, cookie).as_bytes(), given.as_bytes())
}

/// The key a link's token is stored under: its SHA-256, so a reader of the
/// bucket cannot sign in with what it reads.
pub(crate) fn token_key(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Whether a link's token has the shape [`crate::ui::links`] gives it.
pub(crate) fn is_link_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn cookie_value<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Set-Cookie` header for a session: unreadable by scripts, never
/// sent from another site, `Secure` when the dashboard is reached over TLS.
pub(crate) fn set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_MS / 1000
    )
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
