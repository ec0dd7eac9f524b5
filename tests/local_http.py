"""A loopback HTTP server for download tests (no real network): per-test routes, the requests it saw.

    with serve() as srv:
        srv.routes["/t.pth"] = lambda h: send(h, data)
        fetch_official(..., url=base(srv) + "/t.pth")
"""

from __future__ import annotations

import contextlib
import http.server
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator

import pytest

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


class LocalServer(http.server.ThreadingHTTPServer):
    """Answers each path from :attr:`routes` (404 otherwise) and records every request path."""

    routes: dict[str, Handler]
    requests: list[str]

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gives up mid-body (a stall, a full disk, an interrupt) is expected here."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: LocalServer

    def do_GET(self) -> None:  # noqa: N802 — http.server API
        self.server.requests.append(self.path)
        route = self.server.routes.get(urllib.parse.urlsplit(self.path).path)
        if route is None:
            self.send_error(404)
            return
        route(self)

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


@contextlib.contextmanager
def serve() -> Iterator[LocalServer]:
    """A server on 127.0.0.1 (a free port) in a daemon thread, shut down on exit."""
    srv = LocalServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.routes, srv.requests = {}, []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def base(srv: LocalServer) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def send(h: http.server.BaseHTTPRequestHandler, body: bytes, ctype: str = "application/octet-stream",
         length: int | None = None, headers: dict[str, str] | None = None) -> None:
    """Answer 200 with ``body``; ``length`` announces another Content-Length (a cut-off body)."""
    h.send_response(200)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)
    h.wfile.flush()
    h.close_connection = True


def send_then_wait(h: http.server.BaseHTTPRequestHandler, body: bytes, first: int, gate: threading.Event,
                   wait_s: float = 20.0) -> None:
    """Announce all of ``body``, send its first ``first`` bytes, wait for ``gate`` (at most ``wait_s``),
    then send the rest: a pause — or a stall, for a client with a shorter stall timeout (set the gate once
    it gave up; the late rest then meets a closed connection)."""
    h.send_response(200)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body[:first])
    h.wfile.flush()
    gate.wait(wait_s)
    h.wfile.write(body[first:])
    h.close_connection = True


def query(h: http.server.BaseHTTPRequestHandler) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(h.path).query))


def clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment must not see loopback requests."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
