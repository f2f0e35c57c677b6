use std::io;
use std::sync::{Mutex, PoisonError};

use http_body_util::{BodyExt, Full};

use super::*;

/// Collects what a subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Runs `f` with a subscriber that writes every event into the returned buffer.
fn capture(f: impl FnOnce()) -> Vec<String> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    captured.lines()
}

fn record() -> AccessRecord {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/upload?token=secret")
        .version(Version::HTTP_2)
        .body(())
        .expect("request");
    let mut record = AccessRecord::start(&request, "192.0.2.7:5555".parse().expect("addr"), true);
    record.host = Some("web.example".to_owned());
    record.app = Some(Arc::from("web"));
    record.backend = Some("web-1".to_owned());
    record.status = Some(StatusCode::CREATED);
    record.bytes = 42;
    record
}

#[test]
fn an_event_names_the_request_and_its_outcome() {
    let lines = capture(|| drop(record()));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    for expected in [
        "reef_proxy::access",
        "method=POST",
        "host=\"web.example\"",
        "path=/upload",
        "status=201",
        "app=\"web\"",
        "backend=\"web-1\"",
        "client=192.0.2.7:5555",
        "protocol=\"HTTP/2\"",
        "tls=true",
        "bytes=42",
        "duration_ms=",
    ] {
        assert!(line.contains(expected), "{expected} missing from {line}");
    }
    assert!(!line.contains("secret"), "the query was logged: {line}");
}

#[test]
fn the_body_logs_once_with_the_bytes_it_sent() {
    let lines = capture(|| {
        let body = LoggedBody::new(Full::new(Bytes::from_static(b"hello")), record());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let bytes = runtime.block_on(body.collect()).expect("body").to_bytes();
        assert_eq!(bytes, "hello");
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("bytes=47"), "{}", lines[0]);
}

#[test]
fn a_body_dropped_early_still_logs() {
    let lines = capture(|| {
        drop(LoggedBody::new(
            Full::new(Bytes::from_static(b"hello")),
            record(),
        ));
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("bytes=42"), "{}", lines[0]);
}

#[test]
fn a_request_never_answered_is_logged_with_status_0() {
    let lines = capture(|| {
        let mut unanswered = record();
        unanswered.status = None;
        drop(unanswered);
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("status=0"), "{}", lines[0]);
}

#[test]
fn protocols_are_named() {
    assert_eq!(protocol(Version::HTTP_11), "HTTP/1.1");
    assert_eq!(protocol(Version::HTTP_10), "HTTP/1.0");
    assert_eq!(protocol(Version::HTTP_2), "HTTP/2");
}
