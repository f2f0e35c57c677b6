//! Large and streamed bodies through a node proxy to a deployed app: 100 MB
//! each way without the agent holding them in memory, and server-sent
//! events that arrive one by one, as they are sent.

use reef_tests::process::rss_bytes;
use reef_tests::stream_app::write_stream_app;
use reef_tests::TestCluster;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MB: u64 = 1024 * 1024;
const TRANSFER: u64 = 100 * MB;

/// Samples a process's resident memory every 10 ms until finished.
struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut peak = 0;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(rss_bytes(pid).expect("the agent runs"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                peak
            })
        };
        Self { stop, task }
    }

    /// The highest resident size seen.
    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("sampler")
    }
}

/// Reads a response head; returns it and the body bytes read past it.
async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            return (head, buffer[end + 4..].to_vec());
        }
        let n = stream.read(&mut chunk).await.expect("read the head");
        assert!(n > 0, "connection closed before the response head");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// `POST /upload` of `size` zero bytes, streamed; returns what the app counted.
async fn upload(port: u16, size: u64) -> u64 {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: stream.test\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let block = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        stream.write_all(&block[..n]).await.expect("send body");
        left -= n as u64;
    }
    let (head, mut body) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
        .read_to_end(&mut body)
        .await
        .expect("read the answer");
    String::from_utf8_lossy(&body)
        .trim()
        .parse()
        .expect("a count")
}

/// `GET /download?bytes=size`, read to the end, pausing once after
/// `pause_after` bytes like a slow client; returns the bytes received.
async fn download(port: u16, size: u64, pause_after: u64) -> u64 {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "GET /download?bytes={size} HTTP/1.1\r\nHost: stream.test\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let (head, first) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut received = first.len() as u64;
    let mut paused = false;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut chunk).await.expect("read the body");
        if n == 0 {
            return received;
        }
        received += n as u64;
        if !paused && received >= pause_after {
            paused = true;
            // A client that stops reading for a while: the proxy must hold
            // the app back, not buffer what it keeps sending.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabytes_each_way_do_not_grow_the_agent() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let pid = cluster.agents[0].pid().expect("agent pid");
    let app = cluster.dir.path().join("app");
    write_stream_app(&app);
    cluster
        .cli
        .ok(&["deploy", app.to_str().expect("path")])
        .await;

    // Warm up the paths (connection pools, buffers) before the baseline.
    assert_eq!(upload(port, MB).await, MB);
    assert_eq!(download(port, MB, u64::MAX).await, MB);
    let baseline = rss_bytes(pid).expect("agent rss");

    let sampler = RssSampler::start(pid);
    let started = Instant::now();
    assert_eq!(upload(port, TRANSFER).await, TRANSFER);
    let uploaded = started.elapsed();
    let started = Instant::now();
    assert_eq!(download(port, TRANSFER, 10 * MB).await, TRANSFER);
    let downloaded = started.elapsed();
    let peak = sampler.finish().await;

    let growth = peak.saturating_sub(baseline);
    println!(
        "100 MB up in {uploaded:?}, down in {downloaded:?} (1 s pause included); agent RSS {} MB -> peak {} MB (+{:.1} MB)",
        baseline / MB,
        peak / MB,
        growth as f64 / MB as f64
    );
    assert!(
        growth < 20 * MB,
        "the agent's RSS grew by {:.1} MB",
        growth as f64 / MB as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_arrive_one_by_one() {
    let cluster = TestCluster::start(1).await;
    let port = cluster.agents[0].http_port.expect("proxy port");
    let app = cluster.dir.path().join("app");
    write_stream_app(&app);
    cluster
        .cli
        .ok(&["deploy", app.to_str().expect("path")])
        .await;

    const EVENTS: usize = 5;
    const GAP_MS: u64 = 300;
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "GET /events?count={EVENTS}&gap_ms={GAP_MS} HTTP/1.1\r\nHost: stream.test\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let started = Instant::now();
    let (head, mut received) = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let mut arrivals: Vec<Duration> = Vec::new();
    let mut chunk = [0u8; 4096];
    let read_all = async {
        loop {
            let text = String::from_utf8_lossy(&received).into_owned();
            while arrivals.len() < EVENTS
                && text.contains(&format!("data: event {}\n\n", arrivals.len()))
            {
                arrivals.push(started.elapsed());
            }
            let n = stream.read(&mut chunk).await.expect("read events");
            if n == 0 {
                break;
            }
            received.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read_all)
        .await
        .expect("the stream ends");
    println!("events arrived at {arrivals:?}");
    assert_eq!(arrivals.len(), EVENTS, "every event arrived, in order");
    let spread = arrivals[EVENTS - 1] - arrivals[0];
    let sent_over = Duration::from_millis(GAP_MS * (EVENTS as u64 - 1));
    assert!(
        spread >= sent_over * 8 / 10,
        "the events arrived as they were sent ({sent_over:?} apart), not all at once: {arrivals:?}"
    );
}
