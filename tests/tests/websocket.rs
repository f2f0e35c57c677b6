//! WebSockets through a node proxy to a deployed app: echoes pass through,
//! and a blue-green redeploy lets an open socket keep echoing on the old
//! release until its drain deadline while new connections reach the new one.

use futures::{SinkExt, StreamExt};
use reef_tests::ws_app::write_ws_app;
use reef_tests::TestCluster;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Socket = WebSocketStream<TcpStream>;

/// Opens a WebSocket to `echo.test` through the proxy on `port`.
async fn connect(port: u16) -> Option<Socket> {
    let open = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let (socket, _) = tokio_tungstenite::client_async("ws://echo.test/", stream)
            .await
            .ok()?;
        Some(socket)
    };
    tokio::time::timeout(Duration::from_secs(5), open)
        .await
        .ok()
        .flatten()
}

/// Sends `text` and returns the echo, or None once the socket is closed or silent.
async fn echo(socket: &mut Socket, text: &str) -> Option<String> {
    let exchange = async {
        socket.send(Message::text(text)).await.ok()?;
        loop {
            match socket.next().await? {
                Ok(Message::Text(reply)) => return Some(reply.as_str().to_string()),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                _ => return None,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(3), exchange)
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_socket_keeps_echoing_until_the_drain_deadline_of_a_redeploy() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let blue_green = "strategy = \"blue-green\"\ndrain = 5\n";
    let v1 = cluster.dir.path().join("v1");
    write_ws_app(&v1, "v1", blue_green);
    cluster
        .cli
        .ok(&["deploy", v1.to_str().expect("path")])
        .await;

    let mut old = connect(port).await.expect("a WebSocket through the proxy");
    assert_eq!(echo(&mut old, "hello").await.as_deref(), Some("v1:hello"));
    let big = "x".repeat(70_000);
    assert_eq!(
        echo(&mut old, &big).await.map(|r| r.len()),
        Some(big.len() + 3),
        "a message larger than 64 KiB passes too"
    );

    let v2 = cluster.dir.path().join("v2");
    write_ws_app(&v2, "v2", blue_green);
    let out = cluster
        .cli
        .run(&["deploy", v2.to_str().expect("path")])
        .await;
    assert_eq!(out.code, Some(0), "{out:?}\n{}", cluster.logs());
    let switched = Instant::now();

    // New connections reach the new release.
    let mut new = connect(port).await.expect("a new WebSocket");
    assert_eq!(echo(&mut new, "again").await.as_deref(), Some("v2:again"));

    // The old socket stays on the old release, draining, until the deadline.
    let mut last_echo = None;
    let deadline = switched + Duration::from_secs(20);
    let mut n = 0;
    let closed_after = loop {
        assert!(
            Instant::now() < deadline,
            "the old socket was still open 20 s after the redeploy"
        );
        n += 1;
        let text = format!("ping {n}");
        match echo(&mut old, &text).await {
            Some(reply) => {
                assert_eq!(reply, format!("v1:{text}"), "the open socket stays on v1");
                last_echo = Some(switched.elapsed());
            }
            None => break switched.elapsed(),
        }
        // One message in flight at a time, a few per second.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let last_echo = last_echo.expect("the old socket echoed after the redeploy");
    println!("old socket: last echo {last_echo:?} after the switch, closed after {closed_after:?}");
    assert!(
        last_echo >= Duration::from_secs(3),
        "the open socket kept echoing while draining (drain = 5s): last echo after {last_echo:?}"
    );
    assert!(
        closed_after < Duration::from_secs(5 + 2 + 5),
        "closed once the drain deadline and the stop grace passed: {closed_after:?}"
    );

    // The new release still serves, and is the only one left.
    assert_eq!(echo(&mut new, "still").await.as_deref(), Some("v2:still"));
    let mut fresh = connect(port).await.expect("another WebSocket");
    assert_eq!(echo(&mut fresh, "last").await.as_deref(), Some("v2:last"));
}
