//! Blue-green switching and draining, and responses that stream: a request
//! stays counted until its response body has been sent.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use reef_proxy::Router;

use crate::support::{read_reply, within, TestBackend, TestProxy};

fn web_domains() -> Vec<String> {
    vec!["web.test".to_owned()]
}

/// Reads data frames from `body` until `expected` has arrived.
async fn read_until(body: &mut Incoming, expected: &str) {
    let mut received = Vec::new();
    while received.len() < expected.len() {
        let frame = within(body.frame())
            .await
            .expect("the body ended early")
            .expect("body frame");
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
        }
    }
    assert_eq!(String::from_utf8_lossy(&received), expected);
}

#[tokio::test]
async fn a_switch_moves_new_requests_and_drains_the_old_instance() {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![blue.backend()]);
    let proxy = TestProxy::start(router.clone()).await;

    let held = proxy
        .request(Method::GET, "web.test", "/hold")
        .body(Full::<Bytes>::default())
        .expect("request");
    let held = proxy.send(held);
    let switch_and_check = async {
        blue.wait_held(1).await;
        router.set_app("web", &web_domains(), vec![green.backend()]);
        assert_eq!(router.backends_for("web.test"), Some(vec![green.backend()]));
        for _ in 0..3 {
            assert_eq!(proxy.get("web.test", "/").await.body, "green GET /");
        }
        assert_eq!(router.in_flight("blue"), 1);
        assert_eq!(router.in_flight("green"), 0);
        assert!(!within(router.drain("blue", Duration::from_millis(200))).await);

        let started = Instant::now();
        let drain = router.drain("blue", Duration::from_secs(5));
        let release = async { blue.release() };
        let (drained, ()) = within(async { tokio::join!(drain, release) }).await;
        (drained, started.elapsed())
    };
    let (held, (drained, waited)) = within(async { tokio::join!(held, switch_and_check) }).await;
    let reply = read_reply(held).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "blue held");
    assert!(drained, "blue did not drain");
    assert!(waited < Duration::from_secs(5), "drain waited {waited:?}");
    assert_eq!(router.in_flight("blue"), 0);
    assert_eq!(blue.hits(), 1);
}

#[tokio::test]
async fn a_request_counts_until_its_body_is_sent() {
    let blue = TestBackend::start("blue").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![blue.backend()]);
    let proxy = TestProxy::start(router.clone()).await;

    let request = proxy
        .request(Method::GET, "web.test", "/slow")
        .body(Full::default())
        .expect("request");
    let mut body = proxy.send(request).await.into_body();
    read_until(&mut body, "first ").await;
    // The headers and part of the body were sent, the rest was not.
    assert_eq!(router.in_flight("blue"), 1);
    router.remove_app("web");
    assert_eq!(
        router.in_flight("blue"),
        1,
        "counted after the route is gone"
    );
    assert!(!within(router.drain("blue", Duration::from_millis(50))).await);

    blue.release();
    read_until(&mut body, "second").await;
    assert!(within(body.frame()).await.is_none(), "body ended");
    assert!(within(router.drain("blue", Duration::from_secs(5))).await);
    assert_eq!(router.in_flight("blue"), 0);
}

#[tokio::test]
async fn responses_stream_to_the_client_as_they_come() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![web.backend()]);
    let proxy = TestProxy::start(router).await;

    let request = proxy
        .request(Method::GET, "web.test", "/slow")
        .body(Full::default())
        .expect("request");
    let mut body = proxy.send(request).await.into_body();
    // The instance sends `second` only once released, so the first chunk
    // arrives here before the instance has even produced the second.
    read_until(&mut body, "first ").await;
    web.release();
    read_until(&mut body, "second").await;
    assert!(within(body.frame()).await.is_none(), "body ended");
}

#[tokio::test]
async fn a_client_going_away_ends_its_count() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![web.backend()]);
    let proxy = TestProxy::start(router.clone()).await;

    let request = proxy
        .request(Method::GET, "web.test", "/slow")
        .body(Full::default())
        .expect("request");
    let mut body = proxy.send(request).await.into_body();
    read_until(&mut body, "first ").await;
    assert_eq!(router.in_flight("web-1"), 1);
    drop(body);
    assert!(within(router.drain("web-1", Duration::from_secs(5))).await);
}

#[tokio::test]
async fn a_client_going_away_before_the_answer_ends_its_count() {
    use tokio::io::AsyncWriteExt;

    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &web_domains(), vec![web.backend()]);
    let proxy = TestProxy::start(router.clone()).await;

    let mut client = within(tokio::net::TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    within(client.write_all(b"GET /hold HTTP/1.1\r\nHost: web.test\r\n\r\n"))
        .await
        .expect("send");
    web.wait_held(1).await;
    assert_eq!(router.in_flight("web-1"), 1);
    drop(client);
    assert!(within(router.drain("web-1", Duration::from_secs(5))).await);
}
