use super::*;

#[test]
fn hosts_wildcards_and_prefixes_are_accepted() {
    for entry in [
        "example.com",
        "example.com/api",
        "example.com/api/v1",
        "*.example.com",
        "*.example.com/docs",
        "example.com/a-b_c.d~e/%2Fx/:@!$&'()*+,;=",
    ] {
        assert!(validate_route_domain(entry).is_ok(), "{entry}");
    }
    let route = validate_route_domain("example.com/api").expect("valid");
    assert_eq!(route.host, "example.com");
    assert_eq!(route.prefix, "/api");
}

#[test]
fn malformed_entries_are_refused_saying_what_is_wrong() {
    let cases = [
        ("example.com/a b", "' ' is not allowed"),
        ("*.*.example.com", "exactly one label"),
        ("a.*.example.com", "exactly one label"),
        ("*.com", "top-level domain"),
        ("example.com/../x", "\"..\" segment"),
        ("example.com/a/./x", "\".\" segment"),
        ("example.com/api?x=1", "query string"),
        ("example.com/api#top", "fragment"),
        ("example.com/", "trailing '/'"),
        ("example.com/api/", "write \"example.com/api\""),
        ("example.com//api", "empty segment"),
        ("example.com/%zz", "percent-escape"),
        ("Example.com/api", "not a valid host name"),
    ];
    for (entry, expected) in cases {
        let error = validate_route_domain(entry).expect_err(entry);
        assert!(error.contains(expected), "{entry}: {error}");
        assert!(error.contains(entry), "{entry}: {error}");
    }
    let long = format!("example.com/{}", "a".repeat(MAX_PREFIX_BYTES));
    assert!(validate_route_domain(&long)
        .expect_err("too long")
        .contains("longer than"));
}

#[test]
fn entries_split_the_way_routes_are_compared() {
    let split = RouteDomain::split("Example.COM./api/");
    assert_eq!(split.host, "example.com");
    assert_eq!(split.prefix, "/api");
    assert_eq!(
        RouteDomain::split("example.com"),
        RouteDomain::split("example.com/")
    );
    assert!(RouteDomain::split("*.example.com/x").is_wildcard());
    assert!(!RouteDomain::split("example.com").is_wildcard());
}

proptest::proptest! {
    /// Any text gets an answer, never a panic; what is accepted splits back
    /// into the same host and prefix.
    #[test]
    fn any_entry_is_judged_and_accepted_ones_split_back(entry in "[a-z0-9.*/%?# -]{0,40}") {
        if let Ok(route) = validate_route_domain(&entry) {
            proptest::prop_assert_eq!(RouteDomain::split(&entry), route);
        }
    }
}
