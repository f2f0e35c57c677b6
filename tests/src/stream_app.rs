//! A streaming app for deploy tests, in python3 with the standard library:
//! `POST /upload` reads and counts the body (answering the count),
//! `GET /download?bytes=N` sends N bytes, and `GET /events?count=N&gap_ms=MS`
//! sends N server-sent events, one every MS milliseconds, each flushed on its own.

use std::path::Path;

const SERVER: &str = r#"import http.server, os, time, urllib.parse

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, body, content_type="text/plain"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/download":
            left = int(query["bytes"])
            chunk = b"x" * 65536
            self.send_response(200)
            self.send_header("Content-Length", str(left))
            self.end_headers()
            while left > 0:
                part = chunk[:min(left, len(chunk))]
                self.wfile.write(part)
                left -= len(part)
        elif url.path == "/events":
            count, gap = int(query["count"]), int(query["gap_ms"]) / 1000
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(count):
                if i:
                    time.sleep(gap)
                event = ("data: event %d\n\n" % i).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.reply(b"ok\n")

    def do_POST(self):
        left = int(self.headers["Content-Length"])
        got = 0
        while left > 0:
            data = self.rfile.read(min(left, 65536))
            if not data:
                break
            got += len(data)
            left -= len(data)
        self.reply(str(got).encode())

    def log_message(self, *args):
        pass

print("stream app on", os.environ["PORT"], flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// Writes the app `stream` (domain `stream.test`) into `dir`.
pub fn write_stream_app(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("server.py"), SERVER).expect("write app");
    let manifest = "[app]\nname = \"stream\"\ndomains = [\"stream.test\"]\n\n[deploy]\ncommand = [\"python3\", \"server.py\"]\nhealth = \"/healthz\"\nhealth_interval = \"50ms\"\nhealth_attempts = 100\n";
    std::fs::write(dir.join("Reef.toml"), manifest).expect("write manifest");
}
