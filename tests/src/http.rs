//! A minimal HTTP/1.1 client for tests: one request per connection, raw TCP,
//! so what the proxy sends back is seen exactly.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// `GET path` on 127.0.0.1:port with the given Host header, within 10 s.
pub async fn get(port: u16, host: &str, path: &str) -> std::io::Result<Response> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    send(port, request.as_bytes()).await
}

/// `GET path` at `addr` (another host's proxy) with the given Host header,
/// within 10 s.
pub async fn get_at(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
) -> std::io::Result<Response> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    send_to(addr, request.as_bytes()).await
}

/// Sends raw request bytes and reads the whole response.
pub async fn send(port: u16, request: &[u8]) -> std::io::Result<Response> {
    send_to(([127, 0, 0, 1], port).into(), request).await
}

/// Sends raw request bytes to `addr` and reads the whole response.
pub async fn send_to(addr: std::net::SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "no response within 10s")
        })??;
    parse(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not HTTP: {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}

pub(crate) fn parse(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}
