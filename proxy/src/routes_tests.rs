use super::*;

fn backend(id: &str, port: u16) -> Backend {
    Backend {
        id: id.to_owned(),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

fn domains(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// Routes one request for `host` and returns the chosen backend id and its count.
fn pick(router: &Router, host: &str) -> (String, InFlight) {
    match router.route(host) {
        Route::Forward {
            backend, in_flight, ..
        } => (backend.id.clone(), in_flight),
        other => panic!("expected a backend for {host}, got {other:?}"),
    }
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
    assert!(matches!(router.route("other.example"), Route::UnknownHost));
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
    assert!(matches!(
        router.route("web.example"),
        Route::NoInstance { app } if &*app == "web"
    ));
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
