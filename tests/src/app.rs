//! A small real app for deploy tests: a python3 HTTP server and its Reef.toml.

use std::path::Path;

/// A small HTTP app: answers `<version> <process>` on every path (the
/// process as `<port>.<nonce>`: a sandboxed app sees only its own pid
/// namespace, so its pid would say nothing), `/healthz`
/// per `health` ("ok" or a status code to fail with), `/env/NAME` with an
/// environment variable, `/header/NAME` with the request's NAME headers.
pub fn write_app(dir: &Path, version: &str, health: u16, extra_manifest: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let server = format!(
        r#"import http.server, os, secrets, sys
VERSION = "{version}"
PROCESS = "%s.%s" % (os.environ["PORT"], secrets.token_hex(4))
DATA = os.environ.get("DATA_FILE")
if DATA:
    with open(DATA, "a") as f:
        f.write(VERSION + "\n")
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        seen = open(DATA).read().replace("\n", ",") if DATA else ""
        code, body = 200, ("%s %s %s\n" % (VERSION, PROCESS, seen)).encode()
        if self.path == "/healthz":
            code, body = {health}, b"health\n"
        elif self.path.startswith("/env/"):
            body = os.environ.get(self.path[5:], "").encode()
        elif self.path.startswith("/header/"):
            body = ",".join(self.headers.get_all(self.path[8:], [])).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("starting", VERSION, "on", os.environ["PORT"], flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#
    );
    std::fs::write(dir.join("server.py"), server).expect("write app");
    let manifest = format!(
        "[app]\nname = \"hello\"\ndomains = [\"hello.test\"]\n\n[deploy]\ncommand = [\"python3\", \"server.py\"]\nhealth = \"/healthz\"\nhealth_interval = \"50ms\"\nhealth_attempts = 100\ndrain = 2\n{extra_manifest}"
    );
    std::fs::write(dir.join("Reef.toml"), manifest).expect("write manifest");
}

/// The nodes with a healthy instance of the app `hello` (as [`write_app`]
/// names it), and how many instances are live; empty while its status cannot
/// be read.
pub async fn healthy_on(cli: &crate::Cli) -> (Vec<String>, usize) {
    let out = cli.run(&["status", "hello", "--json"]).await;
    if out.code != Some(0) {
        return (Vec::new(), 0);
    }
    let instances = out.json()["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let healthy = instances
        .iter()
        .filter(|i| i["state"] == "healthy")
        .filter_map(|i| i["node_name"].as_str().map(str::to_string))
        .collect();
    (healthy, instances.len())
}

/// The process that wrote a body of the app [`write_app`] writes
/// (`<version> <process> ...`): the same string for the same process only.
pub fn process_in(body: &str) -> String {
    body.split_whitespace().nth(1).unwrap_or("").to_string()
}

/// Whether the process of [`process_in`] still listens (on its port, on
/// this host's loopback).
pub fn still_serving(process: &str) -> bool {
    let Some(port) = process
        .split('.')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
    else {
        return false;
    };
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        std::time::Duration::from_secs(1),
    )
    .is_ok()
}

/// Host pids of the app processes of instance `instance` (found by the
/// `REEF_INSTANCE_ID` the agent gave them; not the sandbox's own processes).
pub fn instance_pids(instance: &str) -> Vec<String> {
    crate::process::pids_with_env("REEF_INSTANCE_ID", instance)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"python3\0"))
        })
        .collect()
}

/// Writes the test app (v1, healthy) as `name`, serving `domains`, with
/// extra `[app]` lines and extra `deploy` lines.
pub fn write_named_app(dir: &Path, name: &str, domains: &[&str], app_lines: &str, deploy: &str) {
    write_app(dir, "v1", 200, deploy);
    let manifest_path = dir.join("Reef.toml");
    let manifest = std::fs::read_to_string(&manifest_path).expect("manifest");
    let list = domains
        .iter()
        .map(|d| format!("{d:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let manifest = manifest
        .replace("name = \"hello\"", &format!("name = {name:?}"))
        .replace(
            "domains = [\"hello.test\"]",
            &format!("domains = [{list}]\n{app_lines}"),
        );
    std::fs::write(manifest_path, manifest).expect("write manifest");
}
