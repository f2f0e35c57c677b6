//! Local instances and the cluster's routes meet in one routing per app
//! without clobbering each other.

use super::*;
use reef_proto::app_routes::RouteBackend;

fn cluster_routes(app: &str, backends: &[(InstanceId, NodeId, u16)]) -> AppRoutes {
    AppRoutes {
        app: app.into(),
        domains: vec![format!("{app}.test")],
        https_redirect: false,
        maintenance: None,
        backends: backends
            .iter()
            .map(|(instance, node, port)| RouteBackend {
                instance: *instance,
                node: *node,
                addr: SocketAddr::from(([10, 0, 0, 1], *port)),
            })
            .collect(),
    }
}

fn ids(backends: Option<Vec<Backend>>) -> Vec<String> {
    backends
        .unwrap_or_default()
        .into_iter()
        .map(|b| b.id)
        .collect()
}

#[test]
fn other_nodes_are_remote_and_this_node_is_left_out() {
    let (routing, router) = (Routing::default(), Router::new());
    let (me, other) = (NodeId::new(), NodeId::new());
    let (mine, theirs) = (InstanceId::new(), InstanceId::new());
    let routes = cluster_routes("hello", &[(mine, me, 80), (theirs, other, 81)]);
    assert!(routing.apply_cluster(&router, me, "hello", 5, Some(routes)));
    assert_eq!(
        ids(router.remotes_for("hello.test")),
        vec![theirs.to_string()]
    );
    assert_eq!(ids(router.backends_for("hello.test")), Vec::<String>::new());
}

#[test]
fn a_node_that_only_forwards_applies_the_cluster_redirect() {
    let (routing, router) = (Routing::default(), Router::new());
    let (me, other) = (NodeId::new(), NodeId::new());
    let mut routes = cluster_routes("hello", &[(InstanceId::new(), other, 80)]);
    routes.https_redirect = true;
    routing.apply_cluster(&router, me, "hello", 1, Some(routes));
    assert_eq!(router.redirects_https("hello.test"), Some(true));

    // A local instance of a release without the redirect: its word counts here.
    let domains = vec!["hello.test".to_string()];
    routing.add(&router, "hello", &domains, InstanceId::new(), 9000, None);
    assert_eq!(router.redirects_https("hello.test"), Some(false));
}

#[test]
fn local_and_remote_updates_keep_each_other() {
    let (routing, router) = (Routing::default(), Router::new());
    let (me, other) = (NodeId::new(), NodeId::new());
    let (local, remote) = (InstanceId::new(), InstanceId::new());
    let domains = vec!["hello.test".to_string()];
    routing.add(&router, "hello", &domains, local, 9000, None);
    routing.apply_cluster(
        &router,
        me,
        "hello",
        1,
        Some(cluster_routes("hello", &[(remote, other, 80)])),
    );
    assert_eq!(
        ids(router.backends_for("hello.test")),
        vec![local.to_string()]
    );
    assert_eq!(
        ids(router.remotes_for("hello.test")),
        vec![remote.to_string()]
    );

    // The local instance leaves: the remote one is still there to forward to.
    assert!(routing.is_last_local("hello", local));
    routing.remove(&router, "hello", local);
    assert_eq!(ids(router.backends_for("hello.test")), Vec::<String>::new());
    assert_eq!(
        ids(router.remotes_for("hello.test")),
        vec![remote.to_string()]
    );

    // The cluster drops the app: known here, nothing to route to (503).
    routing.apply_cluster(&router, me, "hello", 2, None);
    assert_eq!(ids(router.remotes_for("hello.test")), Vec::<String>::new());
    assert!(router.backends_for("hello.test").is_some());
}

#[test]
fn an_older_entry_never_replaces_a_newer_one() {
    let (routing, router) = (Routing::default(), Router::new());
    let (me, other) = (NodeId::new(), NodeId::new());
    let (old, new) = (InstanceId::new(), InstanceId::new());
    routing.apply_cluster(
        &router,
        me,
        "hello",
        10,
        Some(cluster_routes("hello", &[(new, other, 80)])),
    );
    assert!(!routing.apply_cluster(
        &router,
        me,
        "hello",
        9,
        Some(cluster_routes("hello", &[(old, other, 80)])),
    ));
    assert!(!routing.apply_cluster(&router, me, "hello", 10, None));
    assert_eq!(ids(router.remotes_for("hello.test")), vec![new.to_string()]);
}

#[test]
fn an_app_known_only_from_the_cluster_is_forgotten_with_its_key() {
    let (routing, router) = (Routing::default(), Router::new());
    let (me, other) = (NodeId::new(), NodeId::new());
    routing.apply_cluster(
        &router,
        me,
        "hello",
        1,
        Some(cluster_routes("hello", &[(InstanceId::new(), other, 80)])),
    );
    assert!(router.remotes_for("hello.test").is_some());
    routing.apply_cluster(&router, me, "hello", 2, None);
    assert_eq!(router.remotes_for("hello.test"), None, "unknown host: 404");
}

#[test]
fn a_destroyed_app_keeps_only_what_the_cluster_says() {
    let (routing, router) = (Routing::default(), Router::new());
    let me = NodeId::new();
    let local = InstanceId::new();
    routing.add(&router, "hello", &["hello.test".into()], local, 9000, None);
    routing.remove(&router, "hello", local);
    assert!(
        router.backends_for("hello.test").is_some(),
        "503 while stopped"
    );
    routing.forget_local(&router, "hello");
    assert_eq!(
        router.backends_for("hello.test"),
        None,
        "404 once destroyed"
    );
    // A late entry for it still routes until its deletion arrives.
    routing.apply_cluster(
        &router,
        me,
        "hello",
        3,
        Some(cluster_routes(
            "hello",
            &[(InstanceId::new(), NodeId::new(), 80)],
        )),
    );
    assert_eq!(ids(router.remotes_for("hello.test")).len(), 1);
}

#[test]
fn domains_of_both_sources_route_to_the_app() {
    let (routing, router) = (Routing::default(), Router::new());
    let me = NodeId::new();
    routing.add(
        &router,
        "hello",
        &["old.test".into()],
        InstanceId::new(),
        9000,
        None,
    );
    routing.apply_cluster(
        &router,
        me,
        "hello",
        1,
        Some(cluster_routes(
            "hello",
            &[(InstanceId::new(), NodeId::new(), 80)],
        )),
    );
    assert!(router.backends_for("old.test").is_some());
    assert!(router.backends_for("hello.test").is_some());
    assert_eq!(routing.apps_served_locally(), 1);
}
