//! Child processes that die with their owner, free loopback ports, and
//! polling with a deadline instead of fixed sleeps.

use std::future::Future;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// A child process, killed and reaped when dropped.
pub(crate) struct ChildGuard {
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    pub(crate) fn new(child: Child, log: PathBuf) -> Self {
        Self { child, log }
    }

    /// `Some(status text)` if the process has exited.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(err) => Some(format!("unknown ({err})")),
        }
    }

    /// The last lines the process wrote.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Already gone is fine; the wait reaps it either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last 40 lines of a log file, or a note that it cannot be read.
pub(crate) fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        }
        Err(err) => format!("(no log at {}: {err})", path.display()),
    }
}

/// A loopback port that is free for TCP now (another process may take it
/// before it is used; callers retry on a failed start).
pub(crate) fn free_tcp_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// A loopback port free for both UDP and TCP now, for a DNS server.
pub(crate) fn free_udp_and_tcp_port() -> std::io::Result<u16> {
    for _ in 0..20 {
        let udp = UdpSocket::bind(("127.0.0.1", 0))?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no loopback port free for both UDP and TCP",
    ))
}

/// Polls `check` every 50 ms until it yields `Some`, for at most `timeout`.
pub(crate) async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
