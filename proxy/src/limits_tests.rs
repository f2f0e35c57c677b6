use std::convert::Infallible;

use futures::channel::mpsc;
use futures::SinkExt;
use http::HeaderValue;
use http_body_util::{BodyExt, StreamBody};

use super::*;

type Sender = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;
type TestBody = LimitedBody<StreamBody<mpsc::Receiver<Result<Frame<Bytes>, Infallible>>>>;

const STALL: Duration = Duration::from_secs(60);

fn body(limit: u64) -> (Sender, TestBody, BodyCut) {
    let (sender, receiver) = mpsc::channel(4);
    let cut = BodyCut::default();
    let body = LimitedBody::new(StreamBody::new(receiver), limit, STALL, cut.clone());
    (sender, body, cut)
}

async fn send(sender: &mut Sender, data: &'static [u8]) {
    sender
        .send(Ok(Frame::data(Bytes::from_static(data))))
        .await
        .expect("body alive");
}

#[tokio::test(start_paused = true)]
async fn a_body_within_its_limit_passes_whole() {
    let (mut sender, body, cut) = body(6);
    send(&mut sender, b"abc").await;
    send(&mut sender, b"def").await;
    drop(sender);
    let bytes = body.collect().await.expect("whole body").to_bytes();
    assert_eq!(bytes, "abcdef");
    assert!(cut.error(6).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_body_growing_past_its_limit_is_cut() {
    let (mut sender, mut body, cut) = body(5);
    send(&mut sender, b"abc").await;
    send(&mut sender, b"def").await;
    let first = body.frame().await.expect("a frame").expect("data");
    assert_eq!(first.into_data().expect("data"), "abc");
    let error = body
        .frame()
        .await
        .expect("a frame")
        .expect_err("over the limit");
    assert_eq!(error.to_string(), "the request body is larger than 5 bytes");
    assert!(matches!(
        cut.error(5),
        Some(ProxyError::BodyTooLarge { limit: 5 })
    ));
    assert!(body.frame().await.is_none(), "nothing after the cut");
    assert!(body.is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_is_cut_after_the_timeout() {
    let (mut sender, mut body, cut) = body(100);
    send(&mut sender, b"abc").await;
    assert!(body.frame().await.is_some());
    let started = Instant::now();
    // Nothing more is sent; the paused clock jumps to the next timer.
    let error = body.frame().await.expect("a frame").expect_err("stalled");
    assert_eq!(started.elapsed(), STALL);
    assert!(error.to_string().contains("no progress"), "{error}");
    assert!(matches!(cut.error(100), Some(ProxyError::BodyStalled)));
    drop(sender);
}

#[tokio::test(start_paused = true)]
async fn progress_restarts_the_stall_timer() {
    let (mut sender, mut body, cut) = body(100);
    let slow_sender = async {
        for _ in 0..3 {
            tokio::time::sleep(STALL * 3 / 4).await;
            send(&mut sender, b"x").await;
        }
        drop(sender);
    };
    let reader = async {
        let mut received = 0;
        while let Some(frame) = body.frame().await {
            frame.expect("no stall");
            received += 1;
        }
        received
    };
    let ((), received) = tokio::join!(slow_sender, reader);
    assert_eq!(received, 3);
    assert!(cut.error(100).is_none());
}

#[tokio::test(start_paused = true)]
async fn time_the_upstream_does_not_read_is_not_a_stall() {
    let (mut sender, mut body, cut) = body(100);
    send(&mut sender, b"a").await;
    assert!(body.frame().await.is_some());
    // Nobody polls the body for a long time (the upstream is busy writing what it got).
    tokio::time::advance(STALL * 3).await;
    // Then it asks for more, and the client is within its time.
    let waited = tokio::time::timeout(STALL / 2, body.frame()).await;
    assert!(waited.is_err(), "cut off although the client had time left");
    send(&mut sender, b"b").await;
    assert!(body.frame().await.expect("a frame").is_ok());
    drop(sender);
    assert!(body.frame().await.is_none());
    assert!(cut.error(100).is_none());
}

#[test]
fn a_declared_length_over_the_limit_is_refused() {
    let mut headers = HeaderMap::new();
    assert!(check_declared_length(&headers, 10).is_ok());
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("10"));
    assert!(check_declared_length(&headers, 10).is_ok());
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("11"));
    assert!(matches!(
        check_declared_length(&headers, 10),
        Err(ProxyError::BodyTooLarge { limit: 10 })
    ));
}
