//! The proxy's connection handling fed broken HTTP/1.1: valid requests (single,
//! pipelined, with length and chunked bodies) with bytes replaced, inserted,
//! removed and cut off, each sent on its own connection, which the client
//! then leaves open. Whatever arrives, the proxy must never panic, must
//! answer or end every connection within its (here short) timeouts, must
//! leave no request counted in flight, and must go on serving. Every
//! answer must be HTTP/1.x, and some must be 200s. The cases come from a
//! fixed seed, so a failure reproduces.
//!
//! A binary of its own: it counts panics with a process-wide hook, which
//! another test's failing assertion must not trip.

#[allow(dead_code)]
#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reef_proxy::{ProxyConfig, Router};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use support::{eventually, read_to_close, within, TestBackend, TestProxy};

/// How many broken requests are sent.
const CASES: usize = 200;

/// Requests the cases are made from: what the fast path takes, and some it hands on.
const VALID: [&[u8]; 6] = [
    b"GET /count HTTP/1.1\r\nHost: web.test\r\nAccept: */*\r\n\r\n",
    b"POST /count HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n\
      5;x=y\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    b"GET /download?bytes=100 HTTP/1.1\r\nHost: web.test\r\n\r\n\
      HEAD /count HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
    b"GET /count HTTP/1.0\r\nHost: web.test\r\n\r\n",
    b"PUT /count HTTP/1.1\r\nHost: web.test\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\
      Content-Length: 3\r\n\r\nabcGET /count HTTP/1.1\r\nHost: web.test\r\n\r\n",
];

/// One change to a request's bytes.
#[derive(Debug, Clone)]
enum Change {
    Replace(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Cut(usize),
}

fn change() -> impl Strategy<Value = Change> {
    // Bytes that matter to HTTP framing come up more often than chance would have them.
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(vec![
            b'\r', b'\n', b':', b' ', b'0', b'9', b'a', b';', b'\t', 0
        ]),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(at, byte)| Change::Replace(at, byte)),
        (any::<usize>(), byte).prop_map(|(at, byte)| Change::Insert(at, byte)),
        any::<usize>().prop_map(Change::Remove),
        any::<usize>().prop_map(Change::Cut),
    ]
}

fn broken(request: &[u8], changes: &[Change]) -> Vec<u8> {
    let mut bytes = request.to_vec();
    for change in changes {
        let len = bytes.len().max(1);
        match *change {
            Change::Replace(at, byte) if !bytes.is_empty() => bytes[at % len] = byte,
            Change::Insert(at, byte) => bytes.insert(at % (bytes.len() + 1), byte),
            Change::Remove(at) if !bytes.is_empty() => {
                bytes.remove(at % len);
            }
            Change::Cut(at) => bytes.truncate(at % (bytes.len() + 1)),
            _ => {}
        }
    }
    bytes
}

#[tokio::test]
async fn broken_requests_never_break_the_proxy() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&panics);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counted.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));

    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &["web.test".to_owned()], vec![web.backend()]);
    // Short client timeouts: a request cut short ends in one of them.
    let config = ProxyConfig {
        client_header_timeout: Duration::from_millis(300),
        client_body_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::start_with(router.clone(), config).await;

    let cases = (
        prop::sample::select(VALID.to_vec()),
        prop::collection::vec(change(), 1..4),
    );
    let mut runner = TestRunner::deterministic();
    let mut answered = 0;
    for case in 0..CASES {
        let (request, changes) = cases.new_tree(&mut runner).expect("a case").current();
        let bytes = broken(request, &changes);
        let mut client = within(TcpStream::connect(proxy.addr))
            .await
            .expect("connect");
        // The proxy may answer and close before it read everything.
        let _ = within(client.write_all(&bytes)).await;
        // The client keeps its side open: the proxy ends the connection,
        // after its answers or when a timeout says nothing more is coming.
        let answer = read_to_close(&mut client).await;
        if answer.starts_with("HTTP/1.1 200") {
            answered += 1;
        }
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1."),
            "case {case}: {:?} got {answer:?}",
            String::from_utf8_lossy(&bytes)
        );
    }

    assert_eq!(panics.load(Ordering::SeqCst), 0, "the proxy panicked");
    // Some changes leave a request that still parses (a changed body byte,
    // say): the cases reach the forwarding, not only the parser (about one
    // in six with this seed).
    assert!(
        answered >= CASES / 10,
        "only {answered} of {CASES} answered 200"
    );
    assert!(
        within(router.drain("web-1", Duration::from_secs(5))).await,
        "a request is still counted in flight"
    );
    eventually("every connection closed", || {
        router.metrics().open_connections() == 0
    })
    .await;
    assert_eq!(proxy.get("web.test", "/").await.status, StatusCode::OK);
}
