//! Server-sent events pass event by event: the client has each event before
//! the instance even produced the next one.

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use reef_proxy::Router;
use tokio::net::TcpStream;

use crate::support::clients::{h2_client, h2_send, no_body};
use crate::support::{within, TestBackend, TestProxy};

/// Reads `body` until `expected` has arrived, and no further.
async fn read_event(body: &mut Incoming, expected: &str) {
    let mut received = Vec::new();
    while received.len() < expected.len() {
        let frame = within(body.frame())
            .await
            .expect("the stream ended early")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
        }
    }
    assert_eq!(String::from_utf8_lossy(&received), expected);
}

/// Asserts that `body` ends without more data (HTTP/2 may end it with an empty frame).
async fn assert_ended(body: &mut Incoming) {
    while let Some(frame) = within(body.frame()).await {
        let frame = frame.expect("a frame");
        let extra = frame.data_ref().map_or(0, |data| data.len());
        assert_eq!(extra, 0, "data after the last event");
    }
}

async fn events_app() -> (TestBackend, TestProxy) {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &["web.test".to_owned()], vec![web.backend()]);
    (web, TestProxy::start(router).await)
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one_over_http1() {
    let (web, proxy) = events_app().await;
    let request = proxy
        .request(http::Method::GET, "web.test", "/events")
        .body(Default::default())
        .expect("request");
    let response = proxy.send(request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // The instance sends `two` only once released: `one` got here on its own.
    read_event(&mut body, "data: one\n\n").await;
    web.release();
    read_event(&mut body, "data: two\n\n").await;
    assert_ended(&mut body).await;
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one_over_http2() {
    let (web, proxy) = events_app().await;
    let tcp = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    let mut client = h2_client(tcp).await;
    let request = Request::builder()
        .uri("http://web.test/events")
        .body(no_body())
        .expect("request");
    let mut body = h2_send(&mut client, request).await.into_body();
    read_event(&mut body, "data: one\n\n").await;
    web.release();
    read_event(&mut body, "data: two\n\n").await;
    assert_ended(&mut body).await;
}
