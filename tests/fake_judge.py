"""Local chat-completions endpoints on 127.0.0.1 for judge tests: one that answers, one that accepts
connections and never answers, and a port that refuses them."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextlib.contextmanager
def fake_endpoint(reply, status=200, full=False):
    """reply(body) -> content; yields (base_url, seen). `seen` records each request body, or with
    full=True {"path", "auth", "body"}; status may be a function of the request count."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body} if full else body)
            code = status(len(seen)) if callable(status) else status
            out = json.dumps({"id": "x", "model": body.get("model"),
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": reply(body)}}]})
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(out.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=lambda: server.serve_forever(poll_interval=0.02), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def stalled_endpoint():
    """An endpoint that accepts connections and never answers; yields (base_url, accepted), where
    `accepted` counts the connections taken (each held open, unanswered, until the end)."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)  # accept() wakes up to see `stop`
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def take():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1", accepted
    finally:
        stop.set()
        thread.join()
        server.close()
        for conn in accepted:
            conn.close()


def refused_endpoint() -> str:
    """The URL of a local port nothing listens on (connections are refused)."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
