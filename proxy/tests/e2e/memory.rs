//! 100 MB up and 100 MB down through the proxy in bounded memory: bodies
//! stream, nothing holds a whole one. The backend makes and consumes its
//! bytes as they go, and so does the client, so any growth of this process's
//! resident size is the proxy buffering.
//!
//! A binary of its own, so no other test allocates beside it; its two tests
//! take turns.

#[allow(dead_code)]
#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use reef_proxy::Router;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use support::backend::CHUNK;
use support::clients::{h1_client, no_body};
use support::{within, TestBackend, TestProxy};

/// How much each test sends through.
const TOTAL: u64 = 100 * 1024 * 1024;

/// How much the process may grow while it does.
const ALLOWED_GROWTH: u64 = 20 * 1024 * 1024;

/// A transfer of 100 MB may take longer than one ordinary step.
const TRANSFER: Duration = Duration::from_secs(120);

/// The tests measure the same process: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// This process's resident size in bytes: `VmRSS` from `/proc/self/status`,
/// the figure `/proc/self/statm` gives in pages, here in kB whatever the
/// page size.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|value| value.trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// The largest resident size seen, sampled as the transfer goes.
struct Peak {
    before: u64,
    peak: u64,
}

impl Peak {
    fn start() -> Self {
        let before = resident();
        Self {
            before,
            peak: before,
        }
    }

    fn sample(&mut self) {
        self.peak = self.peak.max(resident());
    }

    fn assert_bounded(&self, what: &str) {
        let growth = self.peak.saturating_sub(self.before);
        assert!(
            growth < ALLOWED_GROWTH,
            "{what}: resident size grew by {} KiB",
            growth / 1024
        );
    }
}

async fn proxied_app() -> (TestBackend, TestProxy) {
    let web = TestBackend::start("web-1").await;
    let router = Router::new();
    router.set_app("web", &["web.test".to_owned()], vec![web.backend()]);
    (web, TestProxy::start(router).await)
}

/// Uploads `bytes` through the proxy to `/count`; returns what the instance counted.
async fn upload(
    proxy: &TestProxy,
    bytes: u64,
    mut on_chunk: impl FnMut() + Send + Sync + 'static,
) -> String {
    let tcp = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    let mut client = h1_client(tcp).await;
    let chunk = Bytes::from(vec![b'u'; CHUNK]);
    let chunks = futures::stream::unfold(bytes, move |left| {
        let chunk = chunk.clone();
        on_chunk();
        async move {
            if left == 0 {
                return None;
            }
            let size = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
            let frame = Frame::data(chunk.slice(..size));
            Some((Ok::<_, std::io::Error>(frame), left - size as u64))
        }
    });
    let request = Request::builder()
        .method(Method::POST)
        .uri("/count")
        .header("host", "web.test")
        .header("content-length", bytes.to_string())
        .body(StreamBody::new(chunks).boxed())
        .expect("request");
    let response = tokio::time::timeout(TRANSFER, client.send_request(request))
        .await
        .expect("the upload finished in time")
        .expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = within(response.into_body().collect()).await.expect("body");
    String::from_utf8(body.to_bytes().to_vec()).expect("utf-8")
}

/// Downloads `/download?bytes=N` through the proxy frame by frame; returns the byte count.
async fn download(proxy: &TestProxy, bytes: u64, mut on_chunk: impl FnMut()) -> u64 {
    let tcp = within(TcpStream::connect(proxy.addr))
        .await
        .expect("connect");
    let mut client = h1_client(tcp).await;
    let request = Request::builder()
        .uri(format!("/download?bytes={bytes}"))
        .header("host", "web.test")
        .body(no_body())
        .expect("request");
    let response = within(client.send_request(request))
        .await
        .expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = 0;
    let transfer = async {
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.expect("a frame").data_ref() {
                received += data.len() as u64;
                on_chunk();
            }
        }
    };
    tokio::time::timeout(TRANSFER, transfer)
        .await
        .expect("the download finished in time");
    received
}

#[tokio::test]
async fn a_100_mb_upload_streams_in_bounded_memory() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (_web, proxy) = proxied_app().await;
    // Warm up: connections, pools and buffers exist before measuring.
    assert_eq!(
        upload(&proxy, 4 * CHUNK as u64, || {}).await,
        (4 * CHUNK).to_string()
    );

    let peak = std::sync::Arc::new(std::sync::Mutex::new(Peak::start()));
    let sampler = std::sync::Arc::clone(&peak);
    let mut chunks = 0u64;
    let counted = upload(&proxy, TOTAL, move || {
        chunks += 1;
        if chunks % 64 == 0 {
            sampler.lock().expect("peak").sample();
        }
    })
    .await;
    assert_eq!(counted, TOTAL.to_string());
    let mut peak = peak.lock().expect("peak");
    peak.sample();
    peak.assert_bounded("upload");
}

#[tokio::test]
async fn a_100_mb_download_streams_in_bounded_memory() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (_web, proxy) = proxied_app().await;
    assert_eq!(
        download(&proxy, 4 * CHUNK as u64, || {}).await,
        4 * CHUNK as u64
    );

    let mut peak = Peak::start();
    let mut frames = 0u64;
    let received = download(&proxy, TOTAL, || {
        frames += 1;
        if frames % 64 == 0 {
            peak.sample();
        }
    })
    .await;
    assert_eq!(received, TOTAL);
    peak.sample();
    peak.assert_bounded("download");
}
