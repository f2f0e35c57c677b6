"""A tiny HTTP app for reef: answers on $PORT, counts visits in ${data_dir}."""
import http.server
import os

COUNTER = os.path.join(os.environ["DATA_DIR"], "visits")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/healthz":
            body = b"ok\n"
        else:
            visits = int(open(COUNTER).read()) + 1 if os.path.exists(COUNTER) else 1
            with open(COUNTER, "w") as f:
                f.write(str(visits))
            body = f"hello from reef, release {os.environ['REEF_RELEASE']}, visit {visits}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
