use super::*;
use reef_proto::services::ServiceKind;

fn id(n: u128) -> NodeId {
    NodeId(uuid::Uuid::from_u128(n))
}

fn node(n: u128, versions: &'static [u32]) -> ServiceNode<'static> {
    ServiceNode {
        id: id(n),
        name: ["a", "b", "c", "d"][n as usize - 1],
        trust: TrustClass::Dedicated,
        ready: true,
        eligible: true,
        versions,
        services: 0,
    }
}

fn spec(version: u32) -> ServiceSpec {
    ServiceSpec {
        kind: ServiceKind::Postgres,
        version,
        databases: vec!["shop".into()],
    }
}

fn record(node: NodeId, version: u32, desired: ServiceDesired) -> ServiceRecord {
    ServiceRecord {
        app: "shop".into(),
        kind: ServiceKind::Postgres,
        version,
        databases: vec!["shop".into()],
        node,
        port: 21_000,
        role: "shop".into(),
        peer: None,
        desired,
        sealed_password: Vec::new(),
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

#[test]
fn a_new_service_goes_to_a_dedicated_ready_node_with_its_version() {
    let mut contributed = node(1, &[15]);
    contributed.trust = TrustClass::Contributed;
    let mut down = node(2, &[15]);
    down.ready = false;
    let mut draining = node(3, &[15]);
    draining.eligible = false;
    let wrong_version = node(4, &[16]);
    let nodes = [contributed, down, draining, wrong_version];
    assert!(place("shop", &spec(15), None, &nodes).is_err());
    let mut nodes = nodes.to_vec();
    nodes.push(ServiceNode {
        name: "e",
        ..node(1, &[15])
    });
    nodes[4].id = id(5);
    assert_eq!(
        place("shop", &spec(15), None, &nodes),
        Ok(Placement::New { node: id(5) })
    );
}

#[test]
fn new_services_spread_over_the_nodes_then_lowest_id() {
    let mut busy = node(1, &[15]);
    busy.services = 2;
    let nodes = [busy, node(3, &[15]), node(2, &[15])];
    assert_eq!(
        place("shop", &spec(15), None, &nodes),
        Ok(Placement::New { node: id(2) })
    );
}

#[test]
fn a_placed_service_stays_pinned_even_when_its_node_is_down() {
    let mut home = node(1, &[15]);
    home.ready = false;
    let nodes = [home, node(2, &[15])];
    let kept = record(id(1), 15, ServiceDesired::Running);
    assert_eq!(
        place("shop", &spec(15), Some(&kept), &nodes),
        Ok(Placement::Pinned {
            node: id(1),
            ready: false
        })
    );
    // Data kept when the app was destroyed: taken up again where it is.
    let kept = record(id(1), 15, ServiceDesired::Kept);
    assert_eq!(
        place("shop", &spec(15), Some(&kept), &nodes),
        Ok(Placement::Pinned {
            node: id(1),
            ready: false
        })
    );
    // A node that was removed from the cluster: still not moved.
    let gone = record(id(4), 15, ServiceDesired::Running);
    assert_eq!(
        place("shop", &spec(15), Some(&gone), &nodes),
        Ok(Placement::Pinned {
            node: id(4),
            ready: false
        })
    );
}

#[test]
fn a_service_whose_data_was_deleted_is_placed_afresh() {
    let nodes = [node(1, &[15]), node(2, &[15])];
    let deleted = record(id(2), 15, ServiceDesired::Deleted);
    assert_eq!(
        place("shop", &spec(15), Some(&deleted), &nodes),
        Ok(Placement::New { node: id(1) })
    );
}

#[test]
fn a_new_major_version_over_kept_data_is_refused() {
    let nodes = [node(1, &[15, 16])];
    let kept = record(id(1), 15, ServiceDesired::Running);
    let error = place("shop", &spec(16), Some(&kept), &nodes).unwrap_err();
    assert!(error.contains("runs version 15 on node a"), "{error}");
}

#[test]
fn the_refusal_names_what_each_node_has() {
    let mut down = node(2, &[16]);
    down.ready = false;
    let nodes = [node(1, &[15]), down, node(3, &[])];
    let error = place("shop", &spec(16), None, &nodes).unwrap_err();
    assert!(
        error.contains("postgres 16") && error.contains("a has 15; b has 16 but is down"),
        "{error}"
    );
    let error = place("shop", &spec(16), None, &[node(1, &[])]).unwrap_err();
    assert!(
        error.contains("no dedicated node has postgres installed"),
        "{error}"
    );
}

#[test]
fn ports_are_free_ones_in_the_range() {
    let used: BTreeSet<u16> = [20_005, 20_006].into();
    assert_eq!(choose_port(&used, 5), Some(20_007));
    assert_eq!(choose_port(&used, 9_999), Some(29_999));
    assert_eq!(choose_port(&used, 10_000), Some(20_000));
    let all: BTreeSet<u16> = PORTS.collect();
    assert_eq!(choose_port(&all, 3), None);
}

#[test]
fn status_says_when_the_service_waits_for_its_node() {
    let running = record(id(1), 15, ServiceDesired::Running);
    assert_eq!(state(&running, Some("a"), true, Some("running")), "running");
    assert_eq!(state(&running, Some("a"), true, None), "starting");
    assert_eq!(
        state(
            &running,
            Some("a"),
            true,
            Some("restarting: exited with code 1")
        ),
        "restarting: exited with code 1"
    );
    // A node that is down says nothing that counts.
    assert!(
        state(&running, Some("a"), false, Some("running")).starts_with("waiting: node a is down")
    );
    let kept = record(id(1), 15, ServiceDesired::Kept);
    assert_eq!(state(&kept, Some("a"), true, None), "stopped, data kept");
}
