//! The nginx and Caddy configurations: each listens on its own loopback port,
//! routes [`HOST`] to the backend over keep-alive connections, logs no
//! requests, and writes nothing outside the bench's temp dir.
//!
//! Both are set up to do the work the reef proxy does for every request: HTTP/1.1
//! to the backend on pooled connections, the client's Host kept, and
//! `X-Forwarded-For`, `-Proto` and `-Host` added (Caddy adds them by default).
//! nginx's per-connection request limits (1,000 by default) are lifted, as the
//! other two have none.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;

use crate::HOST;

/// Idle keep-alive connections each proxy keeps to the backend (nginx's `keepalive 64`).
const UPSTREAM_IDLE: usize = 64;

/// `nginx.conf` for a server in the foreground with `prefix` as its prefix,
/// speaking HTTP/1.1 on `port` and HTTP/2 with prior knowledge on `h2_port`.
pub(crate) fn nginx(
    prefix: &Path,
    port: u16,
    h2_port: u16,
    upstream: u16,
) -> anyhow::Result<String> {
    let prefix_text = prefix
        .to_str()
        .context("the temp dir's path is not UTF-8")?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Started by root, nginx would run its workers as `nobody`; keep them as the current user.
    let owner = std::fs::metadata(prefix).context("nginx's dir")?.uid();
    let user = if owner == 0 { "user root;" } else { "" };
    Ok(format!(
        r#"{user}
worker_processes {workers};
daemon off;
pid {prefix_text}/nginx.pid;
error_log {prefix_text}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {prefix_text}/client_body;
    proxy_temp_path {prefix_text}/proxy;
    fastcgi_temp_path {prefix_text}/fastcgi;
    uwsgi_temp_path {prefix_text}/uwsgi;
    scgi_temp_path {prefix_text}/scgi;

    upstream bench_backend {{
        server 127.0.0.1:{upstream};
        keepalive {UPSTREAM_IDLE};
        keepalive_requests 1000000;
    }}

    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{h2_port} http2;
        server_name {HOST};

        location / {{
            proxy_pass http://bench_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
    }}
}}
"#
    ))
}

/// The Caddyfile; `home` holds Caddy's data.
pub(crate) fn caddy(home: &Path, port: u16, upstream: u16) -> String {
    let storage = home.join("data").join("caddy");
    format!(
        r#"{{
	admin off
	auto_https off
	grace_period 1s
	storage file_system {storage}
	log {{
		level ERROR
	}}
}}

http://{HOST}:{port} {{
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:{upstream} {{
		transport http {{
			keepalive_idle_conns_per_host {UPSTREAM_IDLE}
		}}
	}}
}}
"#,
        storage = storage.display()
    )
}
