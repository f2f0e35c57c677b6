use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::*;

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn a_silent_client_times_out() {
    let (_client, server) = tokio::io::duplex(64);
    let mut io = FirstBytesDeadline::new(server, TIMEOUT);
    let started = Instant::now();
    let error = io.read(&mut [0; 8]).await.expect_err("timed out");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_within_its_first_bytes_times_out() {
    let (mut client, server) = tokio::io::duplex(64);
    let mut io = FirstBytesDeadline::new(server, TIMEOUT);
    client.write_all(b"PRI * HTTP/2.0").await.expect("write");
    let mut buf = [0; 64];
    assert_eq!(io.read(&mut buf).await.expect("first bytes"), 14);
    let error = io.read(&mut buf).await.expect_err("timed out");
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn after_the_first_bytes_reads_wait_as_long_as_they_like() {
    let (mut client, server) = tokio::io::duplex(64);
    let mut io = FirstBytesDeadline::new(server, TIMEOUT);
    client.write_all(&[b'x'; FIRST_BYTES]).await.expect("write");
    let mut buf = [0; 64];
    assert_eq!(io.read(&mut buf).await.expect("first bytes"), FIRST_BYTES);
    let later = async {
        tokio::time::sleep(TIMEOUT * 4).await;
        client.write_all(b"late").await.expect("write");
        client
    };
    let (read, _client) = tokio::join!(io.read(&mut buf), later);
    assert_eq!(read.expect("no deadline any more"), 4);
}

#[tokio::test(start_paused = true)]
async fn writes_pass_through() {
    let (mut client, server) = tokio::io::duplex(64);
    let mut io = FirstBytesDeadline::new(server, TIMEOUT);
    io.write_all(b"hello").await.expect("write");
    let mut buf = [0; 5];
    client.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"hello");
}
