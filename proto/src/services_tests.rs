use super::*;

fn endpoint(databases: &[&str]) -> ServiceEndpoint {
    ServiceEndpoint {
        kind: ServiceKind::Postgres,
        node: NodeId(uuid::Uuid::from_u128(1)),
        peer: Some("10.0.0.5:7443".parse().unwrap()),
        port: 21000,
        role: "shop".into(),
        databases: databases.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn kinds_round_trip_by_name() {
    for kind in ServiceKind::ALL {
        assert_eq!(ServiceKind::parse(kind.name()), Some(*kind));
    }
    assert_eq!(ServiceKind::parse("redis"), None);
}

#[test]
fn database_names_are_checked() {
    for good in ["shop", "_x", "a1_b2", &"a".repeat(63)] {
        assert!(validate_database_name(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "1shop",
        "Shop",
        "sh-op",
        "sh op",
        "shop;",
        &"a".repeat(64),
        "postgres",
    ] {
        assert!(validate_database_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_instance_on_the_service_node_uses_its_port_on_loopback() {
    let env = endpoint(&["shop"])
        .env(NodeId(uuid::Uuid::from_u128(1)), "pw", None)
        .unwrap();
    assert_eq!(
        env,
        vec![(
            "DATABASE_URL".to_string(),
            "postgres://shop:pw@127.0.0.1:21000/shop".to_string()
        )]
    );
}

#[test]
fn an_instance_elsewhere_uses_its_local_forwarder() {
    let here = NodeId(uuid::Uuid::from_u128(2));
    let env = endpoint(&["shop", "stats"])
        .env(here, "pw", Some(40001))
        .unwrap();
    let url = |db: &str| format!("postgres://shop:pw@127.0.0.1:40001/{db}");
    assert_eq!(
        env,
        vec![
            ("DATABASE_URL".to_string(), url("shop")),
            ("DATABASE_URL_SHOP".to_string(), url("shop")),
            ("DATABASE_URL_STATS".to_string(), url("stats")),
        ]
    );
    // No forwarder: nothing to reach it by.
    assert_eq!(endpoint(&["shop"]).env(here, "pw", None), None);
}

#[test]
fn a_password_set_by_hand_is_encoded_in_the_url() {
    let env = endpoint(&["shop"])
        .env(NodeId(uuid::Uuid::from_u128(1)), "p@ss:w/rd%", None)
        .unwrap();
    assert_eq!(
        env[0].1,
        "postgres://shop:p%40ss%3Aw%2Frd%25@127.0.0.1:21000/shop"
    );
}

#[test]
fn what_a_node_reports_is_bounded() {
    let report = |state: &str| ServiceHealth {
        app: "shop".into(),
        kind: ServiceKind::Postgres,
        state: state.into(),
    };
    let long = "é".repeat(MAX_STATE_BYTES);
    let many = vec![report(&long); MAX_REPORTED + 5];
    let bounded = ServiceHealth::bounded(many);
    assert_eq!(bounded.len(), MAX_REPORTED);
    assert!(bounded[0].state.len() <= MAX_STATE_BYTES);
    assert!(bounded[0].state.chars().all(|c| c == 'é'));
    assert_eq!(
        ServiceHealth::bounded(vec![report("running")])[0].state,
        "running"
    );
}
