"""A scripted loopback HTTP server for the ingestion tests (http.server in a thread).

Routes map a path to a handler ``fn(req, n)`` where ``req`` is the request handler (with
``req.query`` parsed) and ``n`` counts the hits of that path (1-based); or to bytes/str,
served as a static file that honours ``Range``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Handler = Callable[[Any, int], None]


def send(
    req: Any,
    status: int,
    body: bytes | str = b"",
    headers: dict[str, str] | None = None,
    *,
    length: int | None = None,
) -> None:
    """Answer with ``body``; ``length`` overrides Content-Length (to cut a body short)."""
    data = body.encode() if isinstance(body, str) else body
    req.send_response(status)
    hdrs = {"Content-Type": "application/octet-stream", **(headers or {})}
    for k, v in hdrs.items():
        req.send_header(k, v)
    req.send_header("Content-Length", str(len(data) if length is None else length))
    req.end_headers()
    if req.command != "HEAD":
        req.wfile.write(data)
        req.wfile.flush()
    if length is not None and length != len(data):
        req.close_connection = True


def serve_file(req: Any, data: bytes, content_type: str = "application/octet-stream") -> None:
    """A static file with Range support (206 Partial Content)."""
    rng = req.headers.get("Range", "")
    if rng.startswith("bytes="):
        start = int(rng[6:].split("-")[0])
        if start >= len(data):
            send(req, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
            return
        send(
            req,
            206,
            data[start:],
            {
                "Content-Type": content_type,
                "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
            },
        )
        return
    send(req, 200, data, {"Content-Type": content_type})


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts under test) are expected; stay quiet."""


class Loopback:
    def __init__(self) -> None:
        self.routes: dict[str, Handler | bytes | str] = {}
        self.hits: Counter[str] = Counter()
        self.log: list[tuple[str, str, dict[str, list[str]], dict[str, str]]] = []
        self._lock = threading.Lock()
        outer = self

        class _Req(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms Nagle/delayed-ACK stall per answer

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                self.query = parse_qs(parts.query)
                if self.command == "POST":
                    n = int(self.headers.get("Content-Length", "0") or 0)
                    self.query.update(parse_qs(self.rfile.read(n).decode()))
                with outer._lock:
                    outer.hits[parts.path] += 1
                    n_hit = outer.hits[parts.path]
                    outer.log.append((self.command, parts.path, self.query, dict(self.headers)))
                route = outer.routes.get(parts.path)
                if route is None:
                    send(self, 404, b"not found", {"Content-Type": "text/plain"})
                elif callable(route):
                    route(self, n_hit)
                else:
                    serve_file(self, route.encode() if isinstance(route, str) else route)

            do_GET = _handle
            do_POST = _handle

        self.server = _QuietServer(("127.0.0.1", 0), _Req)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        return self.base + path

    def __enter__(self) -> Loopback:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
