use super::*;
use crate::load::InFlight;
use crate::table::Pick;

fn backend(id: &str, port: u16) -> Backend {
    Backend::new(id, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn domains(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// Routes one request for `host` and returns the chosen backend id and its count.
fn pick(router: &Router, host: &str) -> (String, InFlight) {
    let picked = pick_as(router, host, false);
    (picked.backend.id.clone(), picked.in_flight)
}

/// Routes one request for `host` (`hop`: it came from another node).
fn pick_as(router: &Router, host: &str, hop: bool) -> Pick {
    router
        .lookup(host, "/")
        .unwrap_or_else(|| panic!("{host} is unknown"))
        .pick(hop)
        .unwrap_or_else(|| panic!("no backend for {host}"))
}

#[test]
fn hosts_route_to_their_app() {
    let router = Router::new();
    router.set_app(
        "web",
        &domains(&["web.example", "www.example"]),
        vec![backend("w1", 1)],
    );
    router.set_app("api", &domains(&["api.example"]), vec![backend("a1", 2)]);
    assert_eq!(
        router.backends_for("web.example"),
        Some(vec![backend("w1", 1)])
    );
    assert_eq!(
        router.backends_for("WWW.example."),
        Some(vec![backend("w1", 1)])
    );
    assert_eq!(
        router.backends_for("api.example"),
        Some(vec![backend("a1", 2)])
    );
    assert_eq!(router.backends_for("other.example"), None);
    assert!(router.lookup("other.example", "/").is_none());
}

#[test]
fn set_app_replaces_everything_the_app_had() {
    let router = Router::new();
    router.set_app(
        "web",
        &domains(&["old.example", "kept.example"]),
        vec![backend("w1", 1)],
    );
    router.set_app(
        "web",
        &domains(&["kept.example", "new.example"]),
        vec![backend("w2", 2)],
    );
    assert_eq!(router.backends_for("old.example"), None);
    assert_eq!(
        router.backends_for("kept.example"),
        Some(vec![backend("w2", 2)])
    );
    assert_eq!(
        router.backends_for("new.example"),
        Some(vec![backend("w2", 2)])
    );
}

#[test]
fn an_app_without_backends_is_known_but_unavailable() {
    let router = Router::new();
    router.set_app("web", &domains(&["web.example"]), Vec::new());
    assert_eq!(router.backends_for("web.example"), Some(Vec::new()));
    let routes = router.lookup("web.example", "/").expect("known");
    assert_eq!(&*routes.app, "web");
    assert!(routes.pick(false).is_none());
}

#[test]
fn removed_apps_are_unknown() {
    let router = Router::new();
    router.set_app("web", &domains(&["web.example"]), vec![backend("w1", 1)]);
    router.remove_app("web");
    router.remove_app("never-there");
    assert_eq!(router.backends_for("web.example"), None);
}

#[test]
fn a_domain_taken_by_another_app_stays_with_it() {
    let router = Router::new();
    router.set_app("old", &domains(&["shared.example"]), vec![backend("o1", 1)]);
    router.set_app("new", &domains(&["shared.example"]), vec![backend("n1", 2)]);
    router.remove_app("old");
    assert_eq!(
        router.backends_for("shared.example"),
        Some(vec![backend("n1", 2)])
    );
}

#[test]
fn idle_backends_take_turns() {
    let router = Router::new();
    router.set_app(
        "web",
        &domains(&["web.example"]),
        vec![backend("a", 1), backend("b", 2)],
    );
    let chosen: Vec<String> = (0..4).map(|_| pick(&router, "web.example").0).collect();
    assert_eq!(chosen, ["a", "b", "a", "b"]);
}

#[test]
fn the_least_busy_backend_is_chosen() {
    let router = Router::new();
    router.set_app(
        "web",
        &domains(&["web.example"]),
        vec![backend("a", 1), backend("b", 2)],
    );
    let (first, _held) = pick(&router, "web.example");
    // While the first request is in flight, every new one goes to the other backend.
    for _ in 0..3 {
        let (next, _done) = pick(&router, "web.example");
        assert_ne!(next, first);
    }
}

#[test]
fn routing_counts_the_request_until_its_guard_drops() {
    let router = Router::new();
    router.set_app("web", &domains(&["web.example"]), vec![backend("a", 1)]);
    let (_, in_flight) = pick(&router, "web.example");
    assert_eq!(router.in_flight("a"), 1);
    assert_eq!(router.in_flight("unknown"), 0);
    drop(in_flight);
    assert_eq!(router.in_flight("a"), 0);
}

#[tokio::test]
async fn a_switched_away_backend_drains_when_its_requests_end() {
    let router = Router::new();
    router.set_app("web", &domains(&["web.example"]), vec![backend("blue", 1)]);
    let (_, held) = pick(&router, "web.example");
    router.set_app("web", &domains(&["web.example"]), vec![backend("green", 2)]);
    assert_eq!(pick(&router, "web.example").0, "green");
    assert_eq!(router.in_flight("blue"), 1);
    assert!(!router.drain("blue", Duration::from_millis(10)).await);
    let release = async {
        tokio::task::yield_now().await;
        drop(held);
    };
    let (drained, ()) = tokio::join!(router.drain("blue", Duration::from_secs(10)), release);
    assert!(drained);
    assert_eq!(router.in_flight("blue"), 0);
    assert!(router.drain("never-seen", Duration::ZERO).await);
}

#[test]
fn counters_of_removed_idle_backends_are_forgotten() {
    let router = Router::new();
    router.set_app("web", &domains(&["web.example"]), vec![backend("blue", 1)]);
    let (_, held) = pick(&router, "web.example");
    router.set_app("web", &domains(&["web.example"]), vec![backend("green", 2)]);
    assert_eq!(router.counters(), 2, "blue is still busy");
    drop(held);
    router.remove_app("web");
    assert_eq!(router.counters(), 0);
}

#[test]
fn the_same_id_in_two_apps_shares_one_count() {
    let router = Router::new();
    router.set_app("a", &domains(&["a.example"]), vec![backend("shared", 1)]);
    router.set_app("b", &domains(&["b.example"]), vec![backend("shared", 1)]);
    let (_, _first) = pick(&router, "a.example");
    let (_, _second) = pick(&router, "b.example");
    assert_eq!(router.in_flight("shared"), 2);
}

#[test]
fn remote_nodes_serve_only_an_app_without_local_instances() {
    let router = Router::new();
    router.set_remote("web", vec![backend("node-b", 8001)]);
    assert_eq!(router.backends_for("web.example"), None, "no domains yet");
    router.set_app("web", &domains(&["web.example"]), Vec::new());
    assert_eq!(
        router.remotes_for("web.example"),
        Some(vec![backend("node-b", 8001)])
    );
    let remote = pick_as(&router, "web.example", false);
    assert_eq!(remote.backend.id, "node-b");

    router.set_app("web", &domains(&["web.example"]), vec![backend("w1", 1)]);
    let local = pick_as(&router, "web.example", false);
    assert_eq!(local.backend.id, "w1", "a local instance is preferred");
    assert_eq!(
        router.remotes_for("web.example"),
        Some(vec![backend("node-b", 8001)]),
        "set_app keeps the remote backends"
    );
}

#[test]
fn a_request_from_another_node_is_never_forwarded_again() {
    let router = Router::new();
    router.set_app("web", &domains(&["web.example"]), Vec::new());
    router.set_remote("web", vec![backend("node-b", 8001)]);
    let routes = router.lookup("web.example", "/").expect("known");
    assert!(routes.pick(true).is_none());
    assert!(routes.pick(false).is_some());
}

#[test]
fn set_remote_keeps_domains_instances_and_redirect() {
    let router = Router::new();
    router.set_app_with(
        "web",
        AppRoute {
            domains: domains(&["web.example"]),
            backends: vec![backend("w1", 1)],
            redirect_https: true,
            maintenance: Some(Arc::new(MaintenancePage {
                content_type: "text/plain; charset=utf-8".into(),
                body: bytes::Bytes::from_static(b"later"),
                retry_after_secs: 1,
            })),
        },
    );
    router.set_remote("web", vec![backend("node-b", 8001)]);
    let routes = router.lookup("web.example", "/").expect("known");
    assert!(routes.redirect_https);
    assert!(routes.maintenance.is_some());
    assert_eq!(routes.local.backends(), vec![backend("w1", 1)]);
    router.set_remote("web", Vec::new());
    assert_eq!(router.remotes_for("web.example"), Some(Vec::new()));
    assert_eq!(
        router.backends_for("web.example"),
        Some(vec![backend("w1", 1)])
    );
}

#[test]
fn set_remote_does_not_take_back_a_domain_another_app_took() {
    let router = Router::new();
    router.set_app("old", &domains(&["shared.example"]), Vec::new());
    router.set_app("new", &domains(&["shared.example"]), vec![backend("n1", 1)]);
    router.set_remote("old", vec![backend("node-b", 8001)]);
    assert_eq!(
        &*router.lookup("shared.example", "/").expect("known").app,
        "new"
    );
}

#[test]
fn removing_an_app_gives_a_shared_domain_back_to_the_app_that_still_lists_it() {
    let router = Router::new();
    router.set_app(
        "hello",
        &domains(&["hello.example"]),
        vec![backend("h1", 1)],
    );
    router.set_app("dup", &domains(&["hello.example"]), vec![backend("d1", 2)]);
    assert_eq!(
        &*router.lookup("hello.example", "/").expect("known").app,
        "dup"
    );
    router.remove_app("dup");
    let routes = router.lookup("hello.example", "/").expect("still routed");
    assert_eq!(&*routes.app, "hello");
    router.remove_app("hello");
    assert!(router.lookup("hello.example", "/").is_none());
}

#[test]
fn remote_nodes_take_turns() {
    let router = Router::new();
    router.set_app("web", &domains(&["web.example"]), Vec::new());
    router.set_remote(
        "web",
        vec![backend("node-b", 8001), backend("node-c", 8002)],
    );
    let chosen: Vec<String> = (0..4).map(|_| pick(&router, "web.example").0).collect();
    assert_eq!(chosen, ["node-b", "node-c", "node-b", "node-c"]);
}

#[test]
fn remove_app_forgets_the_remote_backends_too() {
    let router = Router::new();
    router.set_app("web", &domains(&["web.example"]), Vec::new());
    router.set_remote("web", vec![backend("node-b", 8001)]);
    router.remove_app("web");
    router.set_app("web", &domains(&["web.example"]), Vec::new());
    assert_eq!(router.remotes_for("web.example"), Some(Vec::new()));
}

#[test]
fn set_app_turns_the_redirect_off() {
    let router = Router::new();
    router.set_app_with(
        "web",
        AppRoute {
            domains: domains(&["web.example"]),
            redirect_https: true,
            ..AppRoute::default()
        },
    );
    assert!(
        router
            .lookup("web.example", "/")
            .expect("known")
            .redirect_https
    );
    router.set_app("web", &domains(&["web.example"]), Vec::new());
    assert!(
        !router
            .lookup("web.example", "/")
            .expect("known")
            .redirect_https
    );
}

#[test]
fn apps_share_a_host_on_path_prefixes_and_each_keeps_its_own_when_the_other_goes() {
    let router = Router::new();
    router.set_app("web", &domains(&["shop.example"]), vec![backend("w", 1)]);
    router.set_app(
        "api",
        &domains(&["Shop.Example/api/"]),
        vec![backend("a", 2)],
    );
    router.set_app("tenants", &domains(&["*.shop.example"]), vec![]);
    assert_eq!(
        router.app_for("shop.example", "/api/x").as_deref(),
        Some("api")
    );
    assert_eq!(
        router.app_for("shop.example", "/apix").as_deref(),
        Some("web")
    );
    assert_eq!(router.app_for("SHOP.example.", "/").as_deref(), Some("web"));
    assert_eq!(
        router.app_for("a.shop.example", "/").as_deref(),
        Some("tenants")
    );
    router.remove_app("web");
    assert_eq!(router.app_for("shop.example", "/"), None);
    assert_eq!(
        router.app_for("shop.example", "/api").as_deref(),
        Some("api")
    );
    // A new set of entries replaces the old one.
    router.set_app("api", &domains(&["shop.example/v2"]), vec![backend("a", 2)]);
    assert_eq!(router.app_for("shop.example", "/api"), None);
    assert_eq!(
        router.app_for("shop.example", "/v2").as_deref(),
        Some("api")
    );
}
