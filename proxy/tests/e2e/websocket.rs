//! WebSockets through the proxy: tunnelled both ways, counted in flight for
//! their backend while open, kept through a blue-green switch until they
//! close, and closed by shutdown once its grace is over.

use std::time::Duration;

use futures::StreamExt;
use reef_proxy::{ProxyConfig, Router};

use crate::support::ws::{ws_ask, ws_close, ws_connect, WsBackend};
use crate::support::{within, TestProxy};

fn web_domains() -> Vec<String> {
    vec!["web.test".to_owned()]
}

#[tokio::test]
async fn a_websocket_echoes_through_the_proxy() {
    let blue = WsBackend::start("blue").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![blue.backend()]);
    let proxy = TestProxy::start(router.clone()).await;

    let mut socket = ws_connect(proxy.addr, "web.test").await;
    assert_eq!(ws_ask(&mut socket, "hello").await, "blue: hello");
    assert_eq!(ws_ask(&mut socket, "again").await, "blue: again");
    assert_eq!(router.in_flight("blue"), 1, "an open socket counts");
    ws_close(socket).await;
    assert!(within(router.drain("blue", Duration::from_secs(5))).await);
}

#[tokio::test]
async fn an_open_websocket_survives_a_switch_and_holds_the_drain() {
    let blue = WsBackend::start("blue").await;
    let green = WsBackend::start("green").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![blue.backend()]);
    let proxy = TestProxy::start(router.clone()).await;

    let mut old = ws_connect(proxy.addr, "web.test").await;
    assert_eq!(ws_ask(&mut old, "before").await, "blue: before");
    router.set_app("web", &web_domains(), vec![green.backend()]);

    let mut new = ws_connect(proxy.addr, "web.test").await;
    assert_eq!(ws_ask(&mut new, "hi").await, "green: hi");
    assert_eq!(ws_ask(&mut old, "after").await, "blue: after");
    assert_eq!(router.in_flight("blue"), 1);
    assert!(
        !within(router.drain("blue", Duration::from_millis(200))).await,
        "blue drained with a socket open"
    );
    assert_eq!(ws_ask(&mut old, "still").await, "blue: still");

    let drain = router.drain("blue", Duration::from_secs(5));
    let (drained, ()) = within(async { tokio::join!(drain, ws_close(old)) }).await;
    assert!(drained, "blue did not drain once its socket closed");
    assert_eq!(router.in_flight("blue"), 0);
    assert_eq!(ws_ask(&mut new, "on").await, "green: on");
}

#[tokio::test]
async fn shutdown_closes_an_open_websocket_after_the_grace() {
    let blue = WsBackend::start("blue").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![blue.backend()]);
    let config = ProxyConfig {
        shutdown_grace: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let mut proxy = TestProxy::start_with(router.clone(), config).await;

    let mut socket = ws_connect(proxy.addr, "web.test").await;
    assert_eq!(ws_ask(&mut socket, "hello").await, "blue: hello");
    proxy.begin_shutdown();
    // The proxy ends the tunnel: the socket sees its end, not another message.
    loop {
        match within(socket.next()).await {
            None | Some(Err(_)) => break,
            Some(Ok(message)) => assert!(message.is_close(), "{message:?}"),
        }
    }
    proxy.stopped().await.expect("serve returned Ok");
    assert_eq!(router.in_flight("blue"), 0);
}
