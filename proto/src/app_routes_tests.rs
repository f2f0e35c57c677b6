//! Routes round-trip through the envelope, and no bytes make their decoder panic.

use super::*;
use crate::{decode, encode};
use proptest::prelude::*;

fn routes() -> AppRoutes {
    let node = NodeId::new();
    AppRoutes {
        app: "hello".into(),
        domains: vec!["hello.example.com".into()],
        https_redirect: true,
        maintenance: Some(crate::maintenance::MaintenancePage::default_page()),
        backends: vec![
            RouteBackend {
                instance: InstanceId::new(),
                node,
                addr: "10.0.0.1:80".parse().expect("addr"),
            },
            RouteBackend {
                instance: InstanceId::new(),
                node: NodeId::new(),
                addr: "[fd00::2]:8080".parse().expect("addr"),
            },
        ],
    }
}

#[test]
fn routes_round_trip() {
    let routes = routes();
    let bytes = encode(&routes).expect("encode");
    assert_eq!(decode::<AppRoutes>(&bytes), Ok(routes));
}

#[test]
fn elsewhere_leaves_out_the_node_itself() {
    let routes = routes();
    let me = routes.backends[0].node;
    let others: Vec<&RouteBackend> = routes.elsewhere(me).collect();
    assert_eq!(others, vec![&routes.backends[1]]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode::<AppRoutes>(&bytes);
    }

    #[test]
    fn mutated_routes_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = encode(&routes()).expect("encode").to_vec();
        for (at, value) in flips {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        let _ = decode::<AppRoutes>(&bytes);
    }
}
