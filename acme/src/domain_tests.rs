//! Table and property tests for [`validate_domain`].

use super::*;
use proptest::prelude::*;

#[test]
fn accepts_ordinary_names() {
    for name in [
        "app.reef.test",
        "www.app.reef.test",
        "a.b",
        "xn--bcher-kva.example",
        "a-b.c-d.example",
        "0day.example",
        "123.example.com",
    ] {
        assert_eq!(validate_domain(name), Ok(()), "{name}");
    }
}

/// Whether an error is the expected kind.
type Expect = fn(&InvalidDomain) -> bool;

#[test]
fn rejects_with_the_reason() {
    let long_label = format!("{}.example", "a".repeat(64));
    let long_name = format!("{}.example", ["a"; 127].join("."));
    let cases: Vec<(&str, Expect)> = vec![
        ("", |e| matches!(e, InvalidDomain::Empty)),
        ("*.app.reef.test", |e| {
            matches!(e, InvalidDomain::Wildcard { .. })
        }),
        (
            "App.Reef.test",
            |e| matches!(e, InvalidDomain::NotLowercase { lowercase, .. } if lowercase == "app.reef.test"),
        ),
        ("app.reef.test.", |e| {
            matches!(e, InvalidDomain::TrailingDot { .. })
        }),
        (".app.reef.test", |e| {
            matches!(e, InvalidDomain::EmptyLabel { .. })
        }),
        ("app..reef.test", |e| {
            matches!(e, InvalidDomain::EmptyLabel { .. })
        }),
        ("app.reef.test..", |e| {
            matches!(e, InvalidDomain::EmptyLabel { .. })
        }),
        (".", |e| matches!(e, InvalidDomain::EmptyLabel { .. })),
        (&long_label, |e| {
            matches!(e, InvalidDomain::LabelTooLong { len: 64, .. })
        }),
        (&long_name, |e| {
            matches!(e, InvalidDomain::TooLong { len: 261, .. })
        }),
        ("app_1.reef.test", |e| {
            matches!(e, InvalidDomain::BadCharacter { character: '_', .. })
        }),
        ("bücher.example", |e| {
            matches!(
                e,
                InvalidDomain::BadCharacter {
                    character: 'ü', ..
                }
            )
        }),
        ("app reef.test", |e| {
            matches!(e, InvalidDomain::BadCharacter { .. })
        }),
        ("-app.reef.test", |e| {
            matches!(e, InvalidDomain::Hyphen { .. })
        }),
        ("app-.reef.test", |e| {
            matches!(e, InvalidDomain::Hyphen { .. })
        }),
        ("localhost", |e| {
            matches!(e, InvalidDomain::NotQualified { .. })
        }),
        ("127.0.0.1", |e| matches!(e, InvalidDomain::Numeric { .. })),
        ("[::1]", |e| matches!(e, InvalidDomain::BadCharacter { .. })),
    ];
    for (name, expected) in cases {
        let err = validate_domain(name).expect_err(name);
        assert!(expected(&err), "{name}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn the_longest_names_pass() {
    let label = "a".repeat(63);
    assert_eq!(validate_domain(&format!("{label}.example")), Ok(()));
    // 4 labels of 63 with 3 dots = 255; trim to exactly 253.
    let name = format!("{label}.{label}.{label}.{}", "a".repeat(61));
    assert_eq!(name.len(), 253);
    assert_eq!(validate_domain(&name), Ok(()));
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
}

fn valid_name() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..5), "[a-z][a-z0-9]{1,10}")
        .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
}

proptest! {
    #[test]
    fn generated_names_pass(name in valid_name()) {
        prop_assert_eq!(validate_domain(&name), Ok(()));
    }

    #[test]
    fn any_upper_case_letter_is_refused(name in valid_name(), at in any::<prop::sample::Index>()) {
        let letters: Vec<usize> = name.char_indices()
            .filter(|(_, c)| c.is_ascii_lowercase()).map(|(i, _)| i).collect();
        let i = letters[at.index(letters.len())];
        let mut upper = name.clone();
        upper.replace_range(i..=i, &name[i..=i].to_ascii_uppercase());
        let refused = matches!(validate_domain(&upper), Err(InvalidDomain::NotLowercase { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn wildcards_are_refused(name in valid_name()) {
        let refused = matches!(
            validate_domain(&format!("*.{name}")),
            Err(InvalidDomain::Wildcard { .. })
        );
        prop_assert!(refused);
    }

    #[test]
    fn arbitrary_text_never_panics_and_accepted_names_are_plain(text in ".{0,300}") {
        if validate_domain(&text).is_ok() {
            prop_assert!(text.len() <= 253);
            prop_assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
            prop_assert!(text.contains('.'));
        }
    }
}
