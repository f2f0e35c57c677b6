//! The trust crate's unit and property tests: JWTs round-trip and verify,
//! tampering is caught, credentials parse, hostile input never panics.

use crate::jwt::{self, User};
use crate::{creds, identity, ClusterDir, NodeTrust};
use proptest::prelude::*;
use reef_proto::roles::Role;
use reef_proto::NodeId;

#[test]
fn a_cluster_issues_credentials_that_name_their_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = ClusterDir::init(dir.path(), "test").expect("init");
    let reopened = ClusterDir::open(dir.path()).expect("open");
    assert_eq!(reopened.info, cluster.info);
    assert!(ClusterDir::init(dir.path(), "test").is_err(), "init twice");

    let admin = std::fs::read_to_string(dir.path().join("admin.creds")).expect("admin creds");
    let who = identity::from_creds(&admin).expect("admin identity");
    assert_eq!((who.role, who.name.as_str()), (Role::Admin, "admin"));
    assert_eq!(who.account, cluster.info.account);
    assert_eq!(who.issuer, cluster.info.account_signing_key);

    let node = NodeId::new();
    let text = cluster
        .issue_node(node, NodeTrust::Contributed)
        .expect("node creds");
    let who = identity::from_creds(&text).expect("node identity");
    assert_eq!(who.role, Role::Node);
    assert_eq!(who.node, Some((node, NodeTrust::Contributed)));

    use std::os::unix::fs::PermissionsExt as _;
    for private in [
        "admin.creds",
        "keys/operator.nk",
        "keys/account-signing.nk",
        "keys/ca-key.pem",
    ] {
        let mode = std::fs::metadata(dir.path().join(private))
            .expect(private)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{private}");
    }
    assert!(cluster.issue_user(Role::Viewer, "Bad.Name").is_err());
    assert!(cluster.issue_user(Role::Node, "n").is_err());
}

#[test]
fn a_node_gets_a_peer_certificate_for_its_own_key_only_if_well_formed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = ClusterDir::init(dir.path(), "test").expect("init");
    let key = crate::pki::PeerKey::generate().expect("key");
    let again = crate::pki::PeerKey::from_pem(&key.to_pem()).expect("reload");
    assert_eq!(again.public_key(), key.public_key());
    assert_eq!(format!("{key:?}"), "PeerKey(..)");

    let node = NodeId::new();
    let issued = cluster
        .issue_peer_cert(node, &key.public_key())
        .expect("certificate");
    assert!(issued.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let days = (issued.not_after_ms.saturating_sub(reef_proto::now_ms())) / 86_400_000;
    assert!((29..=30).contains(&days), "{days} days");

    for bad in [Vec::new(), vec![4; 64], vec![2; 65], vec![4; 97]] {
        let error = cluster
            .issue_peer_cert(node, &bad)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("P-256"), "{error}");
    }
    let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
    assert!(crate::pki::PeerKey::from_pem(&ed25519.serialize_pem()).is_err());
}

#[test]
fn a_rotated_ca_is_trusted_beside_the_old_one_until_the_rotation_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = ClusterDir::init(dir.path(), "test").expect("init");
    let read = |rel: &str| std::fs::read_to_string(dir.path().join(rel)).expect(rel);
    let (old_ca, old_key) = (read("tls/ca.pem"), read("keys/ca-key.pem"));
    cluster.rotate_ca().expect("rotate");
    let bundle = read("tls/ca.pem");
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2, "{bundle}");
    assert!(
        bundle.ends_with(&old_ca),
        "the old CA is kept after the new one"
    );
    assert_ne!(read("keys/ca-key.pem"), old_key, "a new key signs");
    assert!(!dir.path().join("keys/ca-key.next.pem").exists());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join("keys/ca-key.pem"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A second rotation keeps the current CA and drops the oldest.
    let current = bundle.split_at(bundle.len() - old_ca.len()).0.to_string();
    cluster.rotate_ca().expect("rotate again");
    let again = read("tls/ca.pem");
    assert_eq!(again.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(again.ends_with(&current) && !again.contains(&old_ca));

    cluster.finish_ca_rotation().expect("finish");
    let alone = read("tls/ca.pem");
    assert_eq!(alone.matches("BEGIN CERTIFICATE").count(), 1);
    assert!(again.starts_with(&alone));
}

#[test]
fn a_tampered_jwt_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = ClusterDir::init(dir.path(), "test").expect("init");
    let text = cluster.issue_user(Role::Viewer, "eve").expect("creds");
    let token = creds::parse(&text).expect("parse").jwt;
    let claims: jwt::Claims<User> = jwt::decode(&token).expect("decode");
    // Re-encode the claims with a higher role, keeping the old signature.
    let mut forged = claims.clone();
    forged.nats.tags = vec!["role:admin".into()];
    let parts: Vec<&str> = token.split('.').collect();
    use base64::Engine as _;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&forged).expect("json"));
    let tampered = format!("{}.{}.{}", parts[0], body, parts[2]);
    assert!(identity::from_jwt(&tampered).is_err());
    assert!(identity::from_jwt(&token).is_ok());
}

#[test]
fn a_join_token_round_trips_and_names_what_is_wrong() {
    use crate::token::JoinToken;
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = ClusterDir::init(dir.path(), "test").expect("init");
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    let (creds, key) = cluster.issue_joiner("tok-1", later, false).expect("joiner");
    assert!(key.starts_with('U'));
    let token = JoinToken {
        id: "tok-1".into(),
        urls: vec!["tls://127.0.0.1:4222".into()],
        ca_pem: std::fs::read_to_string(cluster.ca_file()).expect("ca"),
        creds: creds.to_string(),
    };
    let text = token.encode().expect("encode");
    assert_eq!(JoinToken::decode(&text).expect("decode"), token);
    assert!(
        !format!("{token:?}").contains("SEED"),
        "Debug redacts the credential"
    );

    let mut other = token.clone();
    other.id = "tok-2".into();
    let err = JoinToken::decode(&other.encode().expect("encode")).expect_err("not its credential");
    assert!(err.to_string().contains("not this token's"), "{err}");
    let err = JoinToken::decode("hello").expect_err("no prefix");
    assert!(err.to_string().contains("reef-join-1."), "{err}");
    let err = JoinToken::decode(&text[..text.len() / 2]).expect_err("cut short");
    assert!(err.to_string().contains("not a join token"), "{err}");

    let (expired, _) = cluster.issue_joiner("tok-3", 1, false).expect("joiner");
    let stale = JoinToken {
        id: "tok-3".into(),
        creds: expired.to_string(),
        ..token
    };
    let err = JoinToken::decode(&stale.encode().expect("encode")).expect_err("expired");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn malformed_credentials_name_what_is_missing() {
    let err = creds::parse("hello").expect_err("no sections");
    assert!(err.to_string().contains("BEGIN NATS USER JWT"), "{err}");
    let only_jwt = "-----BEGIN NATS USER JWT-----\nabc\n------END NATS USER JWT------\n";
    let err = creds::parse(only_jwt).expect_err("no seed");
    assert!(err.to_string().contains("SEED"), "{err}");
    let rendered = creds::render("a.b.c", "SUABC");
    let parsed = creds::parse(&rendered).expect("round trip");
    assert_eq!(parsed.jwt, "a.b.c");
    assert_eq!(parsed.seed.as_str(), "SUABC");
    assert!(
        !format!("{parsed:?}").contains("SUABC"),
        "Debug redacts the seed"
    );
}

proptest! {
    #[test]
    fn hostile_credentials_and_jwts_never_panic(text in ".{0,600}") {
        let _ = creds::parse(&text);
        let _ = identity::from_creds(&text);
        let _ = identity::from_jwt(&text);
        let _ = jwt::decode::<User>(&text);
    }

    #[test]
    fn hostile_join_tokens_never_panic(text in ".{0,400}", body in "[A-Za-z0-9_-]{0,400}") {
        let _ = crate::token::JoinToken::decode(&text);
        let _ = crate::token::JoinToken::decode(&format!("reef-join-1.{body}"));
    }

    #[test]
    fn jwt_shaped_garbage_never_panics(a in "[A-Za-z0-9_-]{0,80}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,90}") {
        let _ = identity::from_jwt(&format!("{a}.{b}.{c}"));
    }
}
