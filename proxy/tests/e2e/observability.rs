//! What the proxy tells about the requests it served: metrics in the
//! Prometheus text format and one access-log event per request.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use http::StatusCode;
use reef_proxy::Router;
use tokio::net::TcpStream;

use crate::support::{eventually, within, TestBackend, TestProxy};

/// The value of the sample named exactly `series`.
fn sample(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(str::to_owned)
}

#[tokio::test]
async fn metrics_count_requests_latency_and_connections() {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &["web.test".to_owned()], vec![web.backend()]);
    router.set_app("down", &["down.test".to_owned()], Vec::new());
    let proxy = TestProxy::start(router.clone()).await;

    for _ in 0..3 {
        assert_eq!(proxy.get("web.test", "/").await.status, StatusCode::OK);
    }
    assert_eq!(
        proxy.get("down.test", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        proxy.get("nowhere.test", "/").await.status,
        StatusCode::NOT_FOUND
    );

    let text = router.metrics().render();
    let value =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} in {text}"));
    assert_eq!(
        value(r#"reef_proxy_requests_total{app="web",class="2xx"}"#),
        "3"
    );
    assert_eq!(
        value(r#"reef_proxy_requests_total{app="web",class="5xx"}"#),
        "0"
    );
    assert_eq!(
        value(r#"reef_proxy_requests_total{app="down",class="5xx"}"#),
        "1"
    );
    assert_eq!(
        value(r#"reef_proxy_requests_total{app="",class="4xx"}"#),
        "1"
    );
    assert_eq!(
        value(r#"reef_proxy_request_duration_seconds_count{app="web"}"#),
        "3"
    );
    assert_eq!(
        value(r#"reef_proxy_request_duration_seconds_bucket{app="web",le="+Inf"}"#),
        "3"
    );
    assert_eq!(
        value(r#"reef_proxy_request_duration_seconds_bucket{app="web",le="10"}"#),
        "3",
        "local requests take well under 10 s"
    );

    // Open connections: the pooled client keeps one; a raw one adds another.
    let before = router.metrics().open_connections();
    let raw = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    eventually("the raw connection is counted", || {
        router.metrics().open_connections() == before + 1
    })
    .await;
    drop(raw);
    eventually("the closed connection is no longer counted", || {
        router.metrics().open_connections() == before
    })
    .await;
}

/// Collects what the subscriber writes.
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
    fn access_lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|line| line.contains(reef_proxy::ACCESS_TARGET))
            .map(str::to_owned)
            .collect()
    }
}

// One thread runs the test, the proxy and the backend, so the subscriber set
// for this thread sees every event.
#[tokio::test(flavor = "current_thread")]
async fn every_request_writes_one_access_log_event() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &["web.test".to_owned()], vec![web.backend()]);
    let proxy = TestProxy::start(router).await;

    assert_eq!(
        proxy.get("web.test", "/page?secret=1").await.body,
        "web-1 GET /page"
    );
    assert_eq!(
        proxy.get("nowhere.test", "/x").await.status,
        StatusCode::NOT_FOUND
    );
    eventually("both requests are logged", || {
        captured.access_lines().len() == 2
    })
    .await;

    let lines = captured.access_lines();
    let served = &lines[0];
    for expected in [
        "method=GET",
        "host=\"web.test\"",
        "path=/page",
        "status=200",
        "app=\"web\"",
        "backend=\"web-1\"",
        "client=127.0.0.1:",
        "protocol=\"HTTP/1.1\"",
        "tls=false",
        "bytes=15",
        "duration_ms=",
    ] {
        assert!(
            served.contains(expected),
            "{expected} missing from {served}"
        );
    }
    assert!(!served.contains("secret"), "{served}");
    let unknown = &lines[1];
    assert!(unknown.contains("status=404"), "{unknown}");
    assert!(unknown.contains("app=\"\""), "{unknown}");
}
