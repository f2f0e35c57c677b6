//! A WebSocket echo app for deploy tests, in python3 with the standard
//! library only: a hand-written RFC 6455 handshake and frame loop that
//! answers each text message with `<version>:<message>`. Any plain HTTP
//! request (the health check) gets `200 <version>`.

use std::path::Path;

const SERVER: &str = r#"import base64, hashlib, os, socketserver, struct
VERSION = "@VERSION@"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

def exact(f, n):
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data

class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline(8192)
        head = {}
        while True:
            line = self.rfile.readline(8192).decode("latin-1").strip()
            if not line:
                break
            key, _, value = line.partition(":")
            head[key.strip().lower()] = value.strip()
        if head.get("upgrade", "").lower() != "websocket":
            body = (VERSION + "\n").encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            return
        accept = base64.b64encode(hashlib.sha1(head["sec-websocket-key"].encode() + GUID).digest())
        self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        try:
            while True:
                b1, b2 = exact(self.rfile, 2)
                opcode, n = b1 & 0x0F, b2 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", exact(self.rfile, 2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", exact(self.rfile, 8))[0]
                mask = exact(self.rfile, 4) if b2 & 0x80 else b"\0\0\0\0"
                data = bytes(c ^ mask[i % 4] for i, c in enumerate(exact(self.rfile, n)))
                if opcode == 8:
                    self.send(8, data[:2])
                    return
                if opcode == 9:
                    self.send(10, data)
                elif opcode == 1:
                    self.send(1, VERSION.encode() + b":" + data)
        except (EOFError, ConnectionError):
            return

    def send(self, opcode, payload):
        n = len(payload)
        if n < 126:
            size = bytes([n])
        elif n < 65536:
            size = struct.pack(">BH", 126, n)
        else:
            size = struct.pack(">BQ", 127, n)
        self.wfile.write(bytes([0x80 | opcode]) + size + payload)

class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

print("echo", VERSION, "on", os.environ["PORT"], flush=True)
Server(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

/// Writes the echo app `echo` (domain `echo.test`) answering as `version`
/// into `dir`, with `extra_deploy` appended to its `[deploy]` table.
pub fn write_ws_app(dir: &Path, version: &str, extra_deploy: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("server.py"), SERVER.replace("@VERSION@", version)).expect("write app");
    let manifest = format!(
        "[app]\nname = \"echo\"\ndomains = [\"echo.test\"]\n\n[deploy]\ncommand = [\"python3\", \"server.py\"]\nhealth = \"/healthz\"\nhealth_interval = \"50ms\"\nhealth_attempts = 100\n{extra_deploy}"
    );
    std::fs::write(dir.join("Reef.toml"), manifest).expect("write manifest");
}
