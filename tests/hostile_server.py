"""A small hostile HTTP server on 127.0.0.1 for the security tests: it answers what a test scripts.

Unlike the sandbox, it imitates nobody: each route is a function that returns an :class:`Answer`
(status, headers and a body given whole or as timed chunks), and every request it receives is kept, so
a test can prove what reached it — or that nothing did.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    """What to send back. ``chunks`` (bytes, then seconds to wait) replaces ``body`` when given."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    body: bytes = b""
    chunks: Iterable[tuple[bytes, float]] | None = None
    length: int | None = None  # Content-Length to announce for chunked-out bodies


@dataclass
class Served:
    """How a chunked answer ended: how many chunks went out, and whether all did (or the client hung up)."""

    path: str
    chunks_sent: int
    whole: bool


Route = Callable[[Received], Answer]


class HostileServer:
    """``with HostileServer() as server: server.route("POST", "/auth/token", handler)``."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.received: list[Received] = []
        self.served: list[Served] = []  # chunked answers, as each ends
        self._served = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(
                    self.command, parts.path, parts.query, dict(self.headers.items()), self.rfile.read(length)
                )
                owner.received.append(request)
                route = owner.routes.get((self.command, parts.path))
                answer = route(request) if route else Answer(404, {"Content-Type": "text/plain"}, b"no route")
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.chunks is None:
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                    return
                self.send_header("Content-Length", str(answer.length or 0))
                self.end_headers()
                sent, whole = 0, False
                try:
                    for chunk, pause in answer.chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        sent += 1
                        if pause:
                            time.sleep(pause)
                    whole = True
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what a bounded reader does
                self.close_connection = True
                with owner._served:
                    owner.served.append(Served(parts.path, sent, whole))
                    owner._served.notify_all()

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, path: str, handler: Route) -> None:
        self.routes[(method, path)] = handler

    def wait_served(self, count: int = 1, timeout: float = 60.0) -> list[Served]:
        """The first ``count`` chunked answers, once they have ended; ``timeout`` only catches a hang."""
        with self._served:
            assert self._served.wait_for(lambda: len(self.served) >= count, timeout), self.served
            return self.served[:count]

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
