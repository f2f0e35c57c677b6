//! Forwarding between node proxies: an app with no instance on this node is
//! served through another node's peer listener over mutual TLS, local
//! instances are preferred, a request that came from another node is never
//! forwarded again, and only the peer listener believes `X-Forwarded-*`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use reef_proxy::{AppRoute, Backend, Certificates, PeerTls, ProxyConfig, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::clients::{h1_client, h2_client, h2_send, no_body};
use crate::support::tls::{connect_tls, TestCa};
use crate::support::ws::{ws_ask, ws_close, ws_connect, WsBackend};
use crate::support::{read_reply, within, TestBackend, TestProxy};

const NAME_A: &str = "a.node.reef";
const NAME_B: &str = "b.node.reef";

fn web_domains() -> Vec<String> {
    vec!["web.test".to_owned()]
}

fn with_peer(peer: PeerTls) -> ProxyConfig {
    ProxyConfig {
        peer: Some(peer),
        ..ProxyConfig::default()
    }
}

/// Node A's peer listener as node B knows it.
fn node_a(addr: SocketAddr) -> Backend {
    Backend::new("node-a", addr).with_tls_name(NAME_A)
}

/// Node A runs `web-a`; node B knows the app only through A's peer listener.
async fn two_nodes(ca: &TestCa) -> (TestBackend, TestProxy, TestProxy) {
    let instance = TestBackend::start("web-a").await;
    let router_a = Router::new();
    router_a.set_app("web", &web_domains(), vec![instance.backend()]);
    let node_a_proxy = TestProxy::start_node(router_a, with_peer(ca.peer(NAME_A)), None).await;

    let router_b = Router::new();
    router_b.set_app("web", &web_domains(), Vec::new());
    let peer_a = node_a_proxy.peer_addr.expect("A's peer listener");
    router_b.set_remote("web", vec![node_a(peer_a)]);
    let node_b = TestProxy::start_node(router_b, with_peer(ca.peer(NAME_B)), None).await;
    (instance, node_a_proxy, node_b)
}

fn values<'a>(seen: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    seen.iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[tokio::test]
async fn an_app_without_local_instance_is_served_by_another_node() {
    let ca = TestCa::new();
    let (instance, _node_a, node_b) = two_nodes(&ca).await;
    let request = node_b
        .request(Method::GET, "Web.test", "/headers")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .body(Full::default())
        .expect("request");
    let reply = read_reply(node_b.send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-backend"], "web-a");
    assert_eq!(instance.hits(), 1);

    let seen = reply.header_lines();
    assert_eq!(
        values(&seen, "host"),
        ["Web.test"],
        "the original Host is kept"
    );
    // The client as node B saw it, whatever it claimed; node A adds nothing.
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(values(&seen, "x-forwarded-proto"), ["http"]);
    assert_eq!(node_b.router.in_flight("node-a"), 0);
}

#[tokio::test]
async fn a_clients_hop_marker_neither_stops_nor_grants_anything() {
    let ca = TestCa::new();
    let (instance, _node_a, node_b) = two_nodes(&ca).await;
    let request = node_b
        .request(Method::GET, "web.test", "/")
        .header("x-reef-hop", "1")
        .body(Full::default())
        .expect("request");
    let reply = read_reply(node_b.send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(instance.hits(), 1);
}

#[tokio::test]
async fn bodies_and_websockets_cross_nodes_too() {
    let ca = TestCa::new();
    let (_instance, _node_a, node_b) = two_nodes(&ca).await;
    // A body goes through the full path's upstream client.
    let request = node_b
        .request(Method::POST, "web.test", "/echo")
        .body(Full::new(Bytes::from_static(b"carried over TLS")))
        .expect("request");
    let reply = read_reply(node_b.send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "carried over TLS");

    let ws = WsBackend::start("ws-a").await;
    let router_a = Router::new();
    router_a.set_app("chat", &["chat.test".to_owned()], vec![ws.backend()]);
    let a = TestProxy::start_node(router_a, with_peer(ca.peer(NAME_A)), None).await;
    let router_b = Router::new();
    router_b.set_app("chat", &["chat.test".to_owned()], Vec::new());
    router_b.set_remote("chat", vec![node_a(a.peer_addr.expect("peer"))]);
    let b = TestProxy::start_node(router_b, with_peer(ca.peer(NAME_B)), None).await;
    let mut socket = ws_connect(b.addr, "chat.test").await;
    assert_eq!(ws_ask(&mut socket, "hello").await, "ws-a: hello");
    ws_close(socket).await;
}

#[tokio::test]
async fn two_nodes_pointing_at_each_other_do_not_loop() {
    let ca = TestCa::new();
    let router_a = Router::new();
    let router_b = Router::new();
    router_a.set_app("web", &web_domains(), Vec::new());
    router_b.set_app("web", &web_domains(), Vec::new());
    let a = TestProxy::start_node(router_a.clone(), with_peer(ca.peer(NAME_A)), None).await;
    let b = TestProxy::start_node(router_b, with_peer(ca.peer(NAME_B)), None).await;
    router_a.set_remote(
        "web",
        vec![Backend::new("node-b", b.peer_addr.expect("peer")).with_tls_name(NAME_B)],
    );
    b.router
        .set_remote("web", vec![node_a(a.peer_addr.expect("peer"))]);

    // B forwards to A once; A has no instance and does not send it back.
    let reply = b.get("web.test", "/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body, "web has no healthy instance right now\n");
    let metrics = router_a.metrics().render();
    assert!(
        metrics.contains("reef_proxy_requests_total{app=\"web\",class=\"5xx\"} 1\n"),
        "node A saw the request exactly once: {metrics}"
    );
}

#[tokio::test]
async fn a_local_instance_is_preferred_over_another_node() {
    let ca = TestCa::new();
    let (remote_instance, _node_a, node_b) = two_nodes(&ca).await;
    let local = TestBackend::start("web-b").await;
    node_b
        .router
        .set_app("web", &web_domains(), vec![local.backend()]);
    for _ in 0..4 {
        assert_eq!(node_b.get("web.test", "/").await.body, "web-b GET /");
    }
    assert_eq!(remote_instance.hits(), 0);

    // Once the local instance is gone, the other node takes over again.
    node_b.router.set_app("web", &web_domains(), Vec::new());
    assert_eq!(node_b.get("web.test", "/").await.body, "web-a GET /");
}

/// Relays one side's connections to `target`, keeping every byte sent each
/// way, as someone on the wire between two nodes would see them.
async fn wiretap(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = within(TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind the relay");
    let addr = listener.local_addr().expect("relay address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(target).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(copy_keeping(cr, sw, Arc::clone(&kept)));
            tokio::spawn(copy_keeping(sr, cw, Arc::clone(&kept)));
        }
    });
    (addr, seen)
}

async fn copy_keeping(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = [0u8; 4096];
    while let Ok(read) = from.read(&mut buf).await {
        if read == 0 {
            break;
        }
        seen.lock().expect("lock").extend_from_slice(&buf[..read]);
        if to.write_all(&buf[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn what_travels_between_nodes_is_encrypted() {
    let ca = TestCa::new();
    let (instance, node_a_proxy, node_b) = two_nodes(&ca).await;
    let (relay, seen) = wiretap(node_a_proxy.peer_addr.expect("peer")).await;
    node_b.router.set_remote("web", vec![node_a(relay)]);

    let request = node_b
        .request(Method::POST, "web.test", "/echo?token=secret-query")
        .header("cookie", "session=secret-cookie")
        .body(Full::new(Bytes::from_static(b"secret-body")))
        .expect("request");
    let reply = read_reply(node_b.send(request).await).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "secret-body");
    let reply = node_b.get("web.test", "/headers").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(instance.hits(), 2);

    let wire = seen.lock().expect("lock").clone();
    assert!(
        wire.len() > 500,
        "the relay saw the exchanges: {} bytes",
        wire.len()
    );
    for secret in [
        &b"secret-query"[..],
        b"secret-cookie",
        b"secret-body",
        b"web.test",
        b"HTTP/1.1",
        b"x-forwarded",
    ] {
        assert!(
            !contains(&wire, secret),
            "{} crossed the wire in the clear",
            String::from_utf8_lossy(secret)
        );
    }
}

#[tokio::test]
async fn a_peer_listener_serves_only_nodes_of_the_cluster() {
    let ca = TestCa::new();
    let (instance, node_a_proxy, _node_b) = two_nodes(&ca).await;
    let peer = node_a_proxy.peer_addr.expect("peer");

    // Plain HTTP: no TLS, no answer.
    let mut plain = within(TcpStream::connect(peer)).await.expect("connect");
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = within(plain.read_to_end(&mut answer)).await;
    assert!(!contains(&answer, b"web-a"), "served over plain HTTP");

    // TLS without a client certificate, trusting the right CA.
    let refused = async {
        let stream = connect_tls(peer, NAME_A, ca.client_config(&[b"http/1.1"])).await?;
        let mut client = h1_client(stream).await;
        let request = Request::builder()
            .uri("/")
            .header("host", "web.test")
            .body(no_body())
            .expect("request");
        client
            .send_request(request)
            .await
            .map_err(std::io::Error::other)
    };
    assert!(
        within(refused).await.is_err(),
        "served without a client certificate"
    );

    // A node of another cluster (that trusts node A): its certificate is refused.
    let stranger = TestCa::new();
    let both = format!("{}{}", ca.pem(), stranger.pem());
    let foreign = PeerTls::new(both.as_bytes()).expect("peer TLS");
    let issued = stranger.issue(&[NAME_B]);
    foreign
        .set_identity(NAME_B, &issued.chain_pem, &issued.key_pem)
        .expect("identity");
    let router_c = Router::new();
    router_c.set_app("web", &web_domains(), Vec::new());
    router_c.set_remote("web", vec![node_a(peer)]);
    let node_c = TestProxy::start_node(router_c, with_peer(foreign), None).await;
    let reply = node_c.get("web.test", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);

    // A node of this cluster that is not the one the route names.
    let router_d = Router::new();
    router_d.set_app("web", &web_domains(), Vec::new());
    router_d.set_remote(
        "web",
        vec![Backend::new("node-a", peer).with_tls_name("c.node.reef")],
    );
    let node_d = TestProxy::start_node(router_d, with_peer(ca.peer(NAME_B)), None).await;
    let reply = node_d.get("web.test", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);

    // A node with no certificate of its own cannot forward at all.
    let router_e = Router::new();
    router_e.set_app("web", &web_domains(), Vec::new());
    router_e.set_remote("web", vec![node_a(peer)]);
    let bare = PeerTls::new(ca.pem().as_bytes()).expect("peer TLS");
    let node_e = TestProxy::start_node(router_e, with_peer(bare), None).await;
    let reply = node_e.get("web.test", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    assert_eq!(instance.hits(), 0);
}

#[tokio::test]
async fn an_https_request_crossing_nodes_keeps_its_scheme_and_is_not_redirected() {
    // Node A redirects plain HTTP for the app; node B takes HTTPS for it and
    // forwards to A's peer listener.
    let ca = TestCa::new();
    let instance = TestBackend::start("web-a").await;
    let router_a = Router::new();
    router_a.set_app_with(
        "web",
        AppRoute {
            domains: web_domains(),
            backends: vec![instance.backend()],
            redirect_https: true,
            ..AppRoute::default()
        },
    );
    let node_a_proxy = TestProxy::start_node(router_a, with_peer(ca.peer(NAME_A)), None).await;

    let certs = Certificates::new();
    let issued = ca.issue(&["web.test"]);
    certs
        .set("web.test", &issued.chain_pem, &issued.key_pem)
        .expect("certificate");
    let router_b = Router::new();
    router_b.set_app("web", &web_domains(), Vec::new());
    router_b.set_remote("web", vec![node_a(node_a_proxy.peer_addr.expect("peer"))]);
    let node_b = TestProxy::start_node(router_b, with_peer(ca.peer(NAME_B)), Some(certs)).await;

    let stream = connect_tls(
        node_b.tls_addr.expect("HTTPS listener"),
        "web.test",
        ca.client_config(&[b"h2"]),
    )
    .await
    .expect("handshake");
    let mut client = h2_client(stream).await;
    let request = Request::builder()
        .uri("https://web.test/headers")
        .body(no_body())
        .expect("request");
    let reply = read_reply(h2_send(&mut client, request).await).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers["x-backend"], "web-a");
    let seen = reply.header_lines();
    assert_eq!(values(&seen, "x-forwarded-proto"), ["https"], "{seen:?}");
    assert_eq!(values(&seen, "host"), ["web.test"], "{seen:?}");

    // A plain request straight to node A is still redirected.
    let direct = node_a_proxy.get("web.test", "/").await;
    assert_eq!(direct.status, StatusCode::PERMANENT_REDIRECT);
}

/// Echoes what a tunnel carries, after a `>`.
struct Echo;

impl reef_proxy::TunnelHandler for Echo {
    fn serve(
        &self,
        mut stream: reef_proxy::TunnelStream,
        _client: SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        Box::pin(async move {
            let _ = stream.write_all(b">").await;
            let mut buffer = [0u8; 64];
            while let Ok(n) = stream.read(&mut buffer).await {
                if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        })
    }
}

/// Whether a tunnel through `tls` to `peer` as `name` reaches [`Echo`].
async fn echoed(tls: &PeerTls, peer: SocketAddr, name: &str) -> bool {
    let Ok(mut tunnel) = within(tls.connect_tunnel(peer, name)).await else {
        return false;
    };
    if tunnel.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut answer = [0u8; 5];
    within(tunnel.read_exact(&mut answer)).await.is_ok() && &answer == b">ping"
}

#[tokio::test]
async fn a_tunnel_reaches_a_nodes_handler_only_between_nodes_of_the_cluster() {
    let ca = TestCa::new();
    let a_tls = ca.peer(NAME_A);
    let node_a = TestProxy::start_node(Router::new(), with_peer(a_tls.clone()), None).await;
    let peer = node_a.peer_addr.expect("peer");
    let b = ca.peer(NAME_B);

    // No handler on node A yet: nothing answers.
    assert!(!echoed(&b, peer, NAME_A).await);

    a_tls.set_tunnels(Arc::new(Echo));
    assert!(echoed(&b, peer, NAME_A).await, "a node of the cluster");
    // The node it names must be the one that answers.
    assert!(!echoed(&b, peer, "c.node.reef").await);
    // A client without a certificate of its own, or of another cluster, gets nothing.
    let bare = PeerTls::new(ca.pem().as_bytes()).expect("peer TLS");
    assert!(!echoed(&bare, peer, NAME_A).await);
    let stranger = TestCa::new();
    let both = format!("{}{}", ca.pem(), stranger.pem());
    let foreign = PeerTls::new(both.as_bytes()).expect("peer TLS");
    let issued = stranger.issue(&[NAME_B]);
    foreign
        .set_identity(NAME_B, &issued.chain_pem, &issued.key_pem)
        .expect("identity");
    assert!(!echoed(&foreign, peer, NAME_A).await);
}
