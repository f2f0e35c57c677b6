//! Health checks of an instance on 127.0.0.1: an HTTP `GET` whose status
//! must be 2xx or 3xx, or a plain TCP connect. Each check has a deadline.

use super::error::HealthError;
use reef_proto::manifest::HealthCheck;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Runs one check; the error says what was seen.
pub(crate) async fn check(
    kind: &HealthCheck,
    port: u16,
    timeout: Duration,
) -> Result<(), HealthError> {
    match tokio::time::timeout(timeout, check_inner(kind, port)).await {
        Ok(result) => result,
        Err(_) => Err(HealthError::Timeout { after: timeout }),
    }
}

async fn check_inner(kind: &HealthCheck, port: u16) -> Result<(), HealthError> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|source| HealthError::Connect { port, source })?;
    let HealthCheck::Http { path } = kind else {
        return Ok(());
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: reef-health\r\nConnection: close\r\n\r\n");
    let exchange = |step: &'static str| {
        move |source| HealthError::Exchange {
            step,
            path: path.clone(),
            source,
        }
    };
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(exchange("sending"))?;
    // Only the status line matters, but the response is read to its end
    // (up to 64 KiB) so the app does not see its client vanish mid-answer.
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < 64 * 1024 {
        let n = stream.read(&mut buf).await.map_err(exchange("reading"))?;
        if n == 0 {
            break;
        }
        if total == 0 {
            head.extend_from_slice(&buf[..n]);
        }
        total += n;
    }
    let line = String::from_utf8_lossy(&head);
    let status = parse_status(&line).ok_or_else(|| HealthError::NotHttp { path: path.clone() })?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(HealthError::Status {
            path: path.clone(),
            status,
        })
    }
}

fn parse_status(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_lines() {
        assert_eq!(super::parse_status("HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            super::parse_status("HTTP/1.0 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(super::parse_status("SSH-2.0-OpenSSH"), None);
        assert_eq!(super::parse_status(""), None);
    }
}
