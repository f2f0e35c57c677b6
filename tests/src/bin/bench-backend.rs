//! The backend the deployed-proxy benchmark deploys as an app: answers
//! `hello, world\n` to every HTTP/1.1 request on `127.0.0.1:$PORT`, with
//! keep-alive, one thread per connection. Small and fast enough that the
//! proxies in front of it, not it, are what the benchmark compares.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n";

fn main() {
    let port: u16 = match std::env::var("PORT").ok().and_then(|p| p.parse().ok()) {
        Some(port) => port,
        None => {
            eprintln!("bench-backend: PORT must be set to a port number");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("bench-backend: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
}

/// Answers requests on one connection until the client closes it or sends
/// something that is not HTTP/1.1.
fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut length = 0usize;
        let mut close = false;
        let mut first = true;
        loop {
            line.clear();
            match input.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if first {
                first = false;
                if !line.contains("HTTP/1.") {
                    return;
                }
                continue;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            } else if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            } else if lower.starts_with("transfer-encoding:") {
                // Chunked bodies are not part of the benchmark's load.
                return;
            }
        }
        if length > 0
            && std::io::copy(&mut (&mut input).take(length as u64), &mut std::io::sink()).is_err()
        {
            return;
        }
        if out.write_all(ANSWER).is_err() || close {
            return;
        }
    }
}
