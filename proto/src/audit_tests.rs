use super::*;
use crate::envelope::{decode, encode};
use proptest::prelude::*;

fn entry(outcome: Outcome) -> AuditEntry {
    AuditEntry {
        at_ms: 1_800_000_000_000,
        role: "deployer".into(),
        caller: "ci".into(),
        verb: verbs::APP_SCALE.into(),
        target: "web to 3".into(),
        outcome,
        coordinator: "server-1".into(),
    }
}

#[test]
fn reads_are_left_out_and_every_other_verb_is_recorded() {
    let reads = [
        verbs::JOB_LIST,
        verbs::JOB_GET,
        verbs::NODE_LIST,
        verbs::APP_LIST,
        verbs::APP_STATUS,
        verbs::APP_RELEASES,
        verbs::SECRET_LIST,
        verbs::CERT_LIST,
        verbs::USER_LIST,
        verbs::SERVER_LIST,
        verbs::CRON_LIST,
        verbs::CRON_HISTORY,
        verbs::AUDIT_LIST,
        verbs::NOTIFY_LIST,
        verbs::APP_BACKUPS,
    ];
    for verb in verbs::ALL {
        assert_eq!(records(verb), !reads.contains(&verb), "{verb}");
    }
    // A verb added later is recorded unless it is listed as a read.
    assert!(records("app.something-new"));
}

#[test]
fn a_target_never_holds_a_secret_a_key_or_a_credential() {
    let secret = ApiRequest::SetSecret {
        app: "web".into(),
        key: "DATABASE_PASSWORD".into(),
        value: b"hunter2".to_vec(),
        create: false,
    };
    assert_eq!(target(&secret), "web DATABASE_PASSWORD");
    let user = ApiRequest::AddUser {
        name: "ci".into(),
        role: "deployer".into(),
        public_key: "UABCDEFSECRETISH".into(),
    };
    assert_eq!(target(&user), "ci (deployer)");
    let cert = ApiRequest::AddCertificate {
        domains: vec!["a.example".into(), "b.example".into()],
        chain_pem: "-----BEGIN CERTIFICATE-----".into(),
        key_pem: b"-----BEGIN PRIVATE KEY-----".to_vec(),
    };
    assert_eq!(target(&cert), "a.example b.example");
    let token = ApiResponse::Token {
        id: "t1".into(),
        creds: "-----BEGIN NATS USER JWT-----".into(),
        expires_at_ms: 0,
    };
    assert_eq!(result(&token), "token t1");
    let joined = ApiResponse::UserAdded { jwt: "eyJ".into() };
    assert_eq!(result(&joined), "");
}

#[test]
fn targets_name_what_was_acted_on() {
    assert_eq!(
        target(&ApiRequest::Rollback {
            app: "web".into(),
            to: Some(4)
        }),
        "web to release 4"
    );
    assert_eq!(
        target(&ApiRequest::Scale {
            app: "web".into(),
            replicas: 3
        }),
        "web to 3"
    );
    assert_eq!(
        target(&ApiRequest::SetEligible {
            node: "gpu-1".into(),
            eligible: false
        }),
        "node gpu-1 ineligible"
    );
    assert_eq!(target(&ApiRequest::ListApps), "");
}

#[test]
fn long_text_is_cut_at_a_character_boundary() {
    assert_eq!(clip("short"), "short");
    let exact = "a".repeat(MAX_TEXT);
    assert_eq!(clip(&exact), exact);
    let long = "é".repeat(MAX_TEXT);
    let cut = clip(&long);
    assert!(cut.len() <= MAX_TEXT, "{}", cut.len());
    assert!(cut.ends_with('…'));
    assert!(cut.trim_end_matches('…').chars().all(|c| c == 'é'));
}

#[test]
fn queries_are_checked_field_by_field() {
    let ok = AuditQuery {
        since_ms: 0,
        user: Some("ci".into()),
        verb: Some(verbs::APP_DEPLOY.into()),
        limit: DEFAULT_LIMIT,
    };
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(ok.filter(), "reef.audit.*.ci.app.deploy");
    let any = AuditQuery {
        user: None,
        verb: None,
        ..ok.clone()
    };
    assert_eq!(any.filter(), "reef.audit.*.*.>");
    for (bad, field) in [
        (
            AuditQuery {
                limit: 0,
                ..ok.clone()
            },
            "limit",
        ),
        (
            AuditQuery {
                limit: MAX_LIMIT + 1,
                ..ok.clone()
            },
            "limit",
        ),
        (
            AuditQuery {
                user: Some("*".into()),
                ..ok.clone()
            },
            "user",
        ),
        (
            AuditQuery {
                user: Some("a.b".into()),
                ..ok.clone()
            },
            "user",
        ),
        (
            AuditQuery {
                user: Some(String::new()),
                ..ok.clone()
            },
            "user",
        ),
        (
            AuditQuery {
                verb: Some("app.>".into()),
                ..ok.clone()
            },
            "verb",
        ),
    ] {
        let err = bad.validate().expect_err(&format!("{bad:?}"));
        assert!(err.starts_with(&format!("{field}: ")), "{err}");
    }
}

#[test]
fn entries_travel_whole() {
    for outcome in [
        Outcome::Done {
            result: "release 3".into(),
        },
        Outcome::Refused {
            reason: "viewer may not".into(),
        },
        Outcome::Failed {
            reason: "no such app".into(),
        },
    ] {
        let entry = entry(outcome);
        let bytes = encode(&entry).unwrap();
        assert_eq!(decode::<AuditEntry>(&bytes).unwrap(), entry);
    }
}

proptest! {
    /// Whatever the stream holds, reading it never panics.
    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<AuditEntry>(&bytes);
    }

    /// An entry's bytes cut or changed anywhere decode to an error or to
    /// some entry, never a panic.
    #[test]
    fn damaged_entries_never_panic(cut in 0usize..200, flip in 0usize..200, bit in 0u8..8) {
        let mut bytes = encode(&entry(Outcome::Done { result: "job 1".into() })).unwrap().to_vec();
        if flip < bytes.len() {
            bytes[flip] ^= 1 << bit;
        }
        bytes.truncate(cut.min(bytes.len()));
        let _ = decode::<AuditEntry>(&bytes);
    }
}
