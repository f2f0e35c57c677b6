//! Sign-in with a user credential without its seed leaving the browser:
//! the page signs a single-use nonce with the seed (WebCrypto Ed25519) and
//! sends the credential's JWT and the signature. Pure: whether the JWT was
//! signed by the cluster's signing key, names a user role and has not
//! expired, and whether the signature is the JWT's key's.

use reef_proto::roles::Role;

/// Why a credential signed nobody in.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CredsRefused {
    #[error("the credential cannot be read: {0}")]
    Unreadable(String),
    #[error("the credential was not issued by this cluster")]
    ForeignIssuer,
    #[error("a {0} credential cannot sign in to the dashboard: only users' can")]
    NotAUser(Role),
    #[error("the credential expired")]
    Expired,
    #[error("the signature is not the credential's: the seed does not match its JWT")]
    BadSignature,
    #[error("the credential of {0} was revoked")]
    Revoked(String),
}

/// Who a credential is, when it was issued (seconds), and that it signed
/// `nonce` with `signature_hex`, under `issuer`, at `now_s`.
pub(crate) fn check(
    jwt: &str,
    issuer: &str,
    nonce: &str,
    signature_hex: &str,
    now_s: u64,
) -> Result<(String, Role, u64), CredsRefused> {
    let unreadable = |e: reef_trust::TrustError| CredsRefused::Unreadable(e.to_string());
    let who = reef_trust::identity::from_jwt(jwt).map_err(unreadable)?;
    if who.issuer != issuer {
        return Err(CredsRefused::ForeignIssuer);
    }
    if !Role::USERS.contains(&who.role) {
        return Err(CredsRefused::NotAUser(who.role));
    }
    let claims: reef_trust::jwt::Claims<reef_trust::jwt::User> =
        reef_trust::jwt::decode(jwt).map_err(unreadable)?;
    if claims.exp.is_some_and(|exp| exp <= now_s) {
        return Err(CredsRefused::Expired);
    }
    let signature = unhex(signature_hex).ok_or(CredsRefused::BadSignature)?;
    let key = nkeys::KeyPair::from_public_key(&who.key)
        .map_err(|e| CredsRefused::Unreadable(e.to_string()))?;
    key.verify(nonce.as_bytes(), &signature)
        .map_err(|_| CredsRefused::BadSignature)?;
    Ok((who.name, who.role, who.issued_at))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn a_users_credential_signs_in_and_nothing_else_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = reef_trust::ClusterDir::init(dir.path(), "test").expect("init");
        let issuer = cluster.info.account_signing_key.clone();
        let text = cluster.issue_user(Role::Viewer, "vic").expect("creds");
        let creds = reef_trust::creds::parse(&text).expect("parse");
        let seed = nkeys::KeyPair::from_seed(&creds.seed).expect("seed");
        let nonce = "ab".repeat(32);
        let signature = hex(&seed.sign(nonce.as_bytes()).expect("sign"));

        let (name, role, _) = check(&creds.jwt, &issuer, &nonce, &signature, 0).expect("signs in");
        assert_eq!((name.as_str(), role), ("vic", Role::Viewer));
        assert_eq!(
            check(&creds.jwt, &issuer, &"cd".repeat(32), &signature, 0),
            Err(CredsRefused::BadSignature)
        );
        assert_eq!(
            check(&creds.jwt, &issuer, &nonce, "00", 0),
            Err(CredsRefused::BadSignature)
        );
        let other = reef_trust::ClusterDir::init(&dir.path().join("other"), "other").expect("init");
        assert_eq!(
            check(
                &creds.jwt,
                &other.info.account_signing_key,
                &nonce,
                &signature,
                0
            ),
            Err(CredsRefused::ForeignIssuer)
        );
        let node = cluster
            .issue_node(reef_proto::NodeId::new(), reef_trust::NodeTrust::Dedicated)
            .expect("node creds");
        let node = reef_trust::creds::parse(&node).expect("parse");
        let node_seed = nkeys::KeyPair::from_seed(&node.seed).expect("seed");
        let node_signature = hex(&node_seed.sign(nonce.as_bytes()).expect("sign"));
        assert_eq!(
            check(&node.jwt, &issuer, &nonce, &node_signature, 0),
            Err(CredsRefused::NotAUser(Role::Node))
        );
        assert!(matches!(
            check("not a jwt", &issuer, &nonce, &signature, 0),
            Err(CredsRefused::Unreadable(_))
        ));
    }
}
