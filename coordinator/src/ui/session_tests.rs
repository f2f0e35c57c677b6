use super::*;

fn key(byte: u8) -> SessionKey {
    SessionKey([byte; 32])
}

fn alice() -> Session {
    Session {
        user: "alice".into(),
        role: Role::Deployer,
        expires_at_ms: 2_000,
    }
}

#[test]
fn hmac_matches_rfc_4231_case_2() {
    let mac = hmac(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        hex(&mac),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn a_sealed_session_opens_until_it_expires() {
    let cookie = seal(&key(1), &alice());
    assert_eq!(open(&key(1), &cookie, 1_999), Ok(alice()));
    assert_eq!(open(&key(1), &cookie, 2_000), Err(CookieRefused::Expired));
}

#[test]
fn another_key_or_any_changed_part_is_forged() {
    let cookie = seal(&key(1), &alice());
    assert_eq!(open(&key(2), &cookie, 0), Err(CookieRefused::Forged));
    let admin = cookie.replace(".deployer.", ".admin.");
    assert_eq!(open(&key(1), &admin, 0), Err(CookieRefused::Forged));
    let later = cookie.replace(".2000.", ".9999999999999.");
    assert_eq!(open(&key(1), &later, 0), Err(CookieRefused::Forged));
    let mut flipped = cookie.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    assert_eq!(open(&key(1), &flipped, 0), Err(CookieRefused::Forged));
}

#[test]
fn malformed_cookies_are_named_so() {
    for value in [
        "",
        "a.b.c",
        "alice.deployer.1.xyz",
        "al ice.viewer.5.00",
        "a.b.c.d.e",
    ] {
        assert_eq!(
            open(&key(1), value, 0),
            Err(CookieRefused::Malformed),
            "{value}"
        );
    }
    let node = seal(
        &key(1),
        &Session {
            role: Role::Node,
            ..alice()
        },
    );
    assert_eq!(open(&key(1), &node, 0), Err(CookieRefused::Malformed));
}

#[test]
fn the_csrf_token_is_bound_to_the_cookie() {
    let cookie = seal(&key(1), &alice());
    let token = csrf(&key(1), &cookie);
    assert!(csrf_matches(&key(1), &cookie, &token));
    assert!(!csrf_matches(&key(1), "other", &token));
    assert!(!csrf_matches(&key(2), &cookie, &token));
    assert!(!csrf_matches(&key(1), &cookie, ""));
}

#[test]
fn cookies_are_found_by_name() {
    let header = "a=1; reef_session=v.x; b=2";
    assert_eq!(cookie_value(header, COOKIE), Some("v.x"));
    assert_eq!(cookie_value(header, "c"), None);
    let set = set_cookie("v", true);
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.ends_with("Secure"));
    assert!(!set_cookie("v", false).contains("Secure"));
}

#[test]
fn link_tokens_are_stored_by_hash() {
    let token = "ab".repeat(32);
    assert!(is_link_token(&token));
    assert!(!is_link_token("ab"));
    assert_ne!(token_key(&token), token);
    assert_eq!(token_key(&token).len(), 64);
}
