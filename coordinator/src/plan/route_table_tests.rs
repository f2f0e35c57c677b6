//! Which instances an app's routes list.

use super::*;
use std::collections::HashMap;

fn instance(app: &str, node: NodeId, state: InstanceState) -> Instance {
    Instance {
        id: InstanceId::new(),
        app: app.into(),
        version: 1,
        node,
        state,
        port: Some(8000),
        replaces: None,
        relieves: None,
        gpus: Vec::new(),
        restarts: 0,
        message: None,
        event_seq: 1,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

#[test]
fn only_healthy_instances_of_the_app_with_a_proxy_are_listed() {
    let (a, b, c) = (NodeId::new(), NodeId::new(), NodeId::new());
    let instances = vec![
        instance("hello", a, InstanceState::Healthy),
        instance("hello", b, InstanceState::Healthy),
        instance("hello", b, InstanceState::Draining),
        instance("hello", b, InstanceState::Unhealthy),
        instance("hello", b, InstanceState::Starting),
        instance("hello", c, InstanceState::Healthy),
        instance("other", a, InstanceState::Healthy),
    ];
    let proxies = HashMap::from([(a, addr(1)), (b, addr(2))]);
    let release = ReleaseRouting {
        domains: vec!["hello.test".into()],
        https_redirect: true,
    };
    let routes = build("hello", release, &instances, &HashSet::new(), |node| {
        proxies.get(&node).copied()
    })
    .expect("routes");
    assert_eq!(routes.app, "hello");
    assert_eq!(routes.domains, vec!["hello.test".to_string()]);
    assert!(routes.https_redirect, "every node is told to redirect");
    let listed: Vec<(InstanceId, NodeId, SocketAddr)> = routes
        .backends
        .iter()
        .map(|b| (b.instance, b.node, b.addr))
        .collect();
    // Node c has no proxy address: nobody can forward to it.
    assert_eq!(
        listed,
        vec![(instances[0].id, a, addr(1)), (instances[1].id, b, addr(2))]
    );
}

#[test]
fn an_instance_being_stopped_leaves_at_once() {
    let a = NodeId::new();
    let instances = vec![
        instance("hello", a, InstanceState::Healthy),
        instance("hello", a, InstanceState::Healthy),
    ];
    let stopping = HashSet::from([instances[0].id]);
    let routes = build(
        "hello",
        ReleaseRouting::default(),
        &instances,
        &stopping,
        |_| Some(addr(1)),
    )
    .expect("routes");
    assert_eq!(routes.backends.len(), 1);
    assert_eq!(routes.backends[0].instance, instances[1].id);
}

#[test]
fn no_healthy_instance_means_no_routes() {
    let a = NodeId::new();
    let instances = vec![
        instance("hello", a, InstanceState::Draining),
        instance("hello", a, InstanceState::Stopped),
    ];
    assert_eq!(
        build(
            "hello",
            ReleaseRouting::default(),
            &instances,
            &HashSet::new(),
            |_| Some(addr(1))
        ),
        None
    );
}

#[test]
fn backends_are_sorted_by_instance() {
    let nodes: Vec<NodeId> = (0..5).map(|_| NodeId::new()).collect();
    let mut instances: Vec<Instance> = nodes
        .iter()
        .map(|n| instance("hello", *n, InstanceState::Healthy))
        .collect();
    instances.reverse();
    let routes = build(
        "hello",
        ReleaseRouting::default(),
        &instances,
        &HashSet::new(),
        |_| Some(addr(1)),
    )
    .expect("routes");
    let ids: Vec<InstanceId> = routes.backends.iter().map(|b| b.instance).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}
