use super::*;
use std::collections::HashMap;

fn app(name: &str) -> Arc<AppRoutes> {
    Arc::new(AppRoutes {
        app: Arc::from(name),
        domains: Vec::new(),
        redirect_https: false,
        maintenance: None,
        local: Arc::default(),
        remote: Arc::default(),
    })
}

fn index(entries: &[(&str, &str)]) -> RoutesIndex {
    let map: HashMap<String, Arc<AppRoutes>> = entries
        .iter()
        .map(|(entry, name)| (normalize_entry(entry), app(name)))
        .collect();
    RoutesIndex::build(&map)
}

fn route(index: &RoutesIndex, host: &str, target: &str) -> Option<String> {
    index.lookup(host, target).map(|r| r.app.to_string())
}

#[test]
fn the_longest_prefix_wins() {
    let index = index(&[
        ("shop.example", "web"),
        ("shop.example/api", "api"),
        ("shop.example/api/v2", "api2"),
    ]);
    let cases = [
        ("/", "web"),
        ("/index.html", "web"),
        ("/api", "api"),
        ("/api/", "api"),
        ("/api/users?page=2", "api"),
        ("/api?x=1", "api"),
        ("/api/v2", "api2"),
        ("/api/v2/orders", "api2"),
        ("/api/v20", "api"),
        ("/apix", "web"),
        ("/API", "web"),
    ];
    for (target, expected) in cases {
        assert_eq!(
            route(&index, "shop.example", target).as_deref(),
            Some(expected),
            "{target}"
        );
    }
}

#[test]
fn a_prefix_takes_whole_segments_only() {
    let index = index(&[("shop.example/api", "api")]);
    assert_eq!(
        route(&index, "shop.example", "/api/x").as_deref(),
        Some("api")
    );
    assert_eq!(route(&index, "shop.example", "/apix"), None);
    assert_eq!(route(&index, "shop.example", "/"), None);
    assert_eq!(route(&index, "shop.example", "/ap"), None);
}

#[test]
fn a_wildcard_covers_one_label_and_an_exact_host_beats_it() {
    let index = index(&[
        ("*.shop.example", "tenants"),
        ("admin.shop.example", "admin"),
        ("docs.shop.example/guide", "guide"),
    ]);
    let cases = [
        ("a.shop.example", "/", Some("tenants")),
        ("admin.shop.example", "/", Some("admin")),
        ("docs.shop.example", "/guide/x", Some("guide")),
        // No prefix of the exact host takes it: the wildcard does.
        ("docs.shop.example", "/other", Some("tenants")),
        ("a.b.shop.example", "/", None),
        ("shop.example", "/", None),
    ];
    for (host, target, expected) in cases {
        assert_eq!(
            route(&index, host, target).as_deref(),
            expected,
            "{host}{target}"
        );
    }
}

#[test]
fn entries_are_normalized_like_hosts() {
    assert_eq!(normalize_entry("Shop.Example./API/"), "shop.example/API");
    assert_eq!(normalize_entry("shop.example/"), "shop.example");
    assert_eq!(normalize_entry("*.Shop.Example"), "*.shop.example");
    let index = index(&[("Shop.Example./api/", "api")]);
    assert_eq!(
        route(&index, "shop.example", "/api").as_deref(),
        Some("api")
    );
}
