//! Routes by path and by wildcard host, across nodes: two apps share one
//! host on different path prefixes (the longest wins, on whole segments), a
//! wildcard host reaches its app, and every node routes the same way, a
//! node that runs none of them forwarding to the ones that do. A route
//! another app holds, or a malformed one, is refused before anything is
//! deployed.

use reef_tests::app::{process_in, write_named_app};
use reef_tests::{eventually, http, TestCluster};
use std::time::Duration;

/// Node 1 runs apps placed with `role=web`, node 2 those with `role=api`,
/// node 3 none of them.
async fn three_roles() -> TestCluster {
    TestCluster::start_with(3, &[], |i| match i {
        1 => vec!["--label".into(), "role=web".into()],
        2 => vec!["--label".into(), "role=api".into()],
        _ => vec!["--label".into(), "role=none".into()],
    })
    .await
}

/// Deploys the test app as `name` on the nodes labelled `role`.
async fn deploy(cluster: &TestCluster, name: &str, domains: &[&str], role: &str) {
    let dir = cluster.dir.path().join(name);
    let placement = format!("\n[placement]\nlabels = {{ role = {role:?} }}\n");
    write_named_app(&dir, name, domains, "", &placement);
    cluster.deploy(&dir).await;
    cluster.healthy_nodes(name, 1).await;
}

/// Which process answers `GET path` for `host` on `node`'s proxy (None: not a 200).
async fn served_by(cluster: &TestCluster, node: &str, host: &str, path: &str) -> Option<String> {
    http::get(cluster.proxy_port(node), host, path)
        .await
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| process_in(&r.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_prefixes_and_wildcard_hosts_route_to_their_apps_on_every_node() {
    let cluster = three_roles().await;
    deploy(&cluster, "web", &["shop.test"], "web").await;
    deploy(&cluster, "api", &["shop.test/api"], "api").await;
    deploy(&cluster, "tenants", &["*.shop.test"], "web").await;

    // Each app's own process, as its node serves it.
    let web = eventually("web on node-1", Duration::from_secs(10), || {
        served_by(&cluster, "node-1", "shop.test", "/")
    })
    .await;
    let api = eventually("api on node-2", Duration::from_secs(10), || {
        served_by(&cluster, "node-2", "shop.test", "/api")
    })
    .await;
    let tenants = eventually("tenants on node-1", Duration::from_secs(10), || {
        served_by(&cluster, "node-1", "a.shop.test", "/")
    })
    .await;
    assert_ne!(web, api);
    assert_ne!(web, tenants);

    let cases = [
        ("shop.test", "/", &web),
        ("shop.test", "/index.html", &web),
        ("shop.test", "/api", &api),
        ("shop.test", "/api/orders?page=2", &api),
        ("shop.test", "/apix", &web),
        ("a.shop.test", "/", &tenants),
        ("b.shop.test", "/api", &tenants),
    ];
    for node in cluster.node_names() {
        for (host, path, expected) in cases {
            let what = format!("{node}: {host}{path} to reach {expected}");
            eventually(&what, Duration::from_secs(10), || async {
                served_by(&cluster, &node, host, path)
                    .await
                    .filter(|p| p == expected)
            })
            .await;
        }
        // A wildcard covers exactly one label.
        let deep = http::get(cluster.proxy_port(&node), "a.b.shop.test", "/")
            .await
            .expect("answered");
        assert_eq!(deep.status, 404, "{node}: {deep:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_another_app_holds_or_a_malformed_one_is_refused_and_nothing_is_deployed() {
    let cluster = TestCluster::start(1).await;
    let api = cluster.dir.path().join("api");
    write_named_app(&api, "api", &["shop.test/api"], "", "");
    cluster.deploy(&api).await;

    // The same host and prefix (spelled differently): refused, naming the owner.
    let dup = cluster.dir.path().join("dup");
    write_named_app(&dup, "dup", &["dup.test", "Shop.Test/api/"], "", "");
    let out = cluster
        .cli
        .run(&["deploy", dup.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    // The manifest check refuses the spelling first.
    assert!(out.stderr.contains("app.domains[1]"), "{out:?}");
    write_named_app(&dup, "dup", &["dup.test", "shop.test/api"], "", "");
    let out = cluster
        .cli
        .run(&["deploy", dup.to_str().expect("path")])
        .await;
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("shop.test/api belongs to app api"),
        "{out:?}"
    );

    let malformed = [
        ("shop.test/a b", "' ' is not allowed"),
        ("*.*.shop.test", "exactly one label"),
        ("shop.test/../x", "\"..\" segment"),
        ("shop.test/api?x=1", "query string"),
    ];
    for (entry, expected) in malformed {
        write_named_app(&dup, "dup", &[entry], "", "");
        let out = cluster
            .cli
            .run(&["deploy", dup.to_str().expect("path")])
            .await;
        assert_ne!(out.code, Some(0), "{entry}: {out:?}");
        assert!(
            out.stderr.contains("app.domains[0]") && out.stderr.contains(expected),
            "{entry}: {out:?}"
        );
    }
    let apps = cluster.cli.ok(&["apps", "--json"]).await.json();
    let names: Vec<&str> = apps
        .as_array()
        .expect("apps")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["api"], "{apps}");

    // Another prefix of the same host is free.
    write_named_app(&dup, "dup", &["shop.test/docs"], "", "");
    cluster.deploy(&dup).await;
}
