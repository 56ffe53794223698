"""Pytest plugin: a real HTTP server on 127.0.0.1 serving the fixture news site and misbehaviours.

Serves ``tests/data/site/`` with ``{BASE}`` replaced by the server origin (query strings ignored),
the ``/go/fp-settlements`` redirect from ``expected.json``, hostile routes under ``/bad/`` (see
``_Handler._bad``), routes a test registers with ``add_route``, and logs every request (headers,
counts, maximum concurrent in-flight per path prefix) for assertions.

Every slow or endless route is bounded in time and size, and handler threads are daemons, so
the server always shuts down by itself.
"""

from __future__ import annotations

import gzip
import io
import json
import mimetypes
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

SITE_DIR = Path(__file__).parent / "data" / "site"
BASE_PLACEHOLDER = "{BASE}"

# Bounds that keep misbehaving routes from outliving the test session.
TRICKLE_MAX_SECONDS = 120.0
HUGE_DEFAULT_BYTES = 64 * 1024 * 1024
HUGE_MAX_BYTES = 512 * 1024 * 1024
SLOW_MAX_DELAY = 30.0
BOMB_INFLATED_BYTES = 200 * 1024 * 1024

ETAG_VALUE = '"newsmon-etag-v1"'
ETAG_LAST_MODIFIED = "Wed, 12 Feb 2025 08:00:00 GMT"

_CONTENT_TYPES = {
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json; charset=utf-8",
}
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout)

# Smallest valid PNG (1x1 transparent pixel).
PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000005000127d6c0a70000000049454e44ae426082"
)
SMALL_FEED = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>slow</title>'
    b"<link>http://example.invalid/</link><description>d</description></channel></rss>\n"
)


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str  # without query
    query: str
    headers: dict[str, str]  # lower-case keys
    arrived: float  # time.monotonic()


@dataclass
class Route:
    status: int
    headers: dict[str, str]
    body: bytes


class RequestLog:
    """Thread-safe log of requests plus concurrent in-flight tracking per path prefix.

    A request counts as in flight from arrival until just *before* its response is written, so
    the server's view is always inside the client's (a client cannot see the response, and so
    cannot start its next request, before the count dropped).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []
        self._in_flight: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._max_in_flight.clear()
            # in-flight counts of still-running requests stay, so they decrement correctly

    @staticmethod
    def _prefixes(path: str) -> list[str]:
        parts = [p for p in path.split("/") if p]
        return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]

    def enter(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._records.append(rec)
            for prefix in self._prefixes(rec.path):
                n = self._in_flight.get(prefix, 0) + 1
                self._in_flight[prefix] = n
                self._max_in_flight[prefix] = max(self._max_in_flight.get(prefix, 0), n)

    def leave(self, rec: RecordedRequest) -> None:
        with self._lock:
            for prefix in self._prefixes(rec.path):
                self._in_flight[prefix] -= 1

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    def for_path(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.all() if r.path == path]

    def count(self, path: str) -> int:
        return len(self.for_path(path))

    def max_in_flight(self, prefix: str) -> int:
        """Most requests in flight at once under ``prefix`` (e.g. ``/bad/slow``) since the last reset."""
        with self._lock:
            return self._max_in_flight.get(prefix.rstrip("/") or "/", 0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.all())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "newsmon-test-site/1.0"
    timeout = 60  # idle keep-alive connections must not pin a thread forever
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # keep pytest output clean

    # -- plumbing ---------------------------------------------------------------------

    def handle(self) -> None:
        try:
            super().handle()
        except _DISCONNECTS:
            pass  # a client closing a keep-alive connection is normal, not a server error

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        rec = RecordedRequest(
            method=self.command,
            path=parts.path or "/",
            query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            arrived=time.monotonic(),
        )
        self._rec = rec
        self._left = False
        self.server.site.requests.enter(rec)
        try:
            self._dispatch(rec.path, {k: v[-1] for k, v in parse_qs(parts.query).items()})
        except _DISCONNECTS:
            self.close_connection = True  # the client gave up (timeouts, size caps): expected
        finally:
            self._leave()

    def _leave(self) -> None:
        if not self._left:
            self._left = True
            self.server.site.requests.leave(self._rec)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self._leave()
        self.send_response(status)
        hdrs = {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
        for k, v in hdrs.items():
            self.send_header(k, v)
        if not any(k.lower() == "content-length" for k in hdrs):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _start_endless(self, status: int, headers: dict[str, str]) -> None:
        """Headers for a body delimited by connection close (no Content-Length)."""
        self._leave()
        self.close_connection = True
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()

    # -- routing ----------------------------------------------------------------------

    def _dispatch(self, path: str, q: dict[str, str]) -> None:
        site = self.server.site
        route = site.route_for(path)
        if route is not None:
            self._send(route.status, route.body, route.headers)
            return
        if path in site.redirects:
            self._send(301, b"", {"Location": site.base + site.redirects[path]})
            return
        if path.startswith("/bad/"):
            self._bad(path[len("/bad/") :], q)
            return
        self._static(path)

    def _static(self, path: str) -> None:
        root = SITE_DIR.resolve()
        target = (root / path.lstrip("/")).resolve()
        if root not in target.parents or not target.is_file():
            self._send(404, b"not found\n")
            return
        site = self.server.site
        if site.jitter:
            # Page answers in a shuffled order: the pipeline must not depend on arrival order.
            time.sleep(site.jitter_rng.uniform(0, site.jitter))
        body = target.read_bytes().replace(BASE_PLACEHOLDER.encode(), site.base.encode())
        ctype = _CONTENT_TYPES.get(target.suffix.lower())
        if ctype is None:
            guessed = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            ctype = f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed
        self._send(200, body, {"Content-Type": ctype})

    def _bad(self, name: str, q: dict[str, str]) -> None:
        site = self.server.site
        if name == "404":
            self._send(404, b"not found\n")
        elif name == "500":
            self._send(500, b"internal error\n")
        elif name == "slow":
            time.sleep(min(max(float(q.get("delay", "2")), 0.0), SLOW_MAX_DELAY))
            self._send(200, SMALL_FEED, {"Content-Type": "application/rss+xml; charset=utf-8"})
        elif name == "trickle":
            interval = max(float(q.get("interval", "0.5")), 0.05)
            self._start_endless(200, {"Content-Type": "application/rss+xml; charset=utf-8"})
            stop = time.monotonic() + TRICKLE_MAX_SECONDS
            self.wfile.write(b"<")
            self.wfile.flush()
            while time.monotonic() < stop:
                time.sleep(interval)
                self.wfile.write(b" ")
                self.wfile.flush()
        elif name == "huge":
            total = min(int(q.get("bytes", HUGE_DEFAULT_BYTES)), HUGE_MAX_BYTES)
            headers = {"Content-Type": "application/rss+xml; charset=utf-8"}
            if q.get("length") == "1":
                headers["Content-Length"] = str(total)
            self._start_endless(200, headers)
            chunk = b"<item><title>filler</title></item>\n" * 1820  # ~64 KiB
            sent = 0
            while sent < total:
                piece = chunk[: total - sent]
                self.wfile.write(piece)
                sent += len(piece)
        elif name == "gzip-bomb":
            bomb = site.gzip_bomb()
            self._send(
                200,
                bomb,
                {"Content-Type": "application/rss+xml; charset=utf-8", "Content-Encoding": "gzip"},
            )
        elif name == "redirect-loop":
            n = int(q.get("n", "0"))
            self._send(302, b"", {"Location": f"/bad/redirect-loop?n={n + 1}"})
        elif name == "redirect-to":
            status = int(q.get("status", "302"))
            self._send(status, b"", {"Location": q.get("location", "/")})
        elif name == "wrong-type":
            self._send(200, PNG_BYTES, {"Content-Type": "image/png"})
        elif name == "etag":
            inm = self.headers.get("If-None-Match")
            ims = self.headers.get("If-Modified-Since")
            headers = {
                "Content-Type": "application/rss+xml; charset=utf-8",
                "ETag": ETAG_VALUE,
                "Last-Modified": ETAG_LAST_MODIFIED,
            }
            etag_match = inm is not None and ETAG_VALUE in [t.strip() for t in inm.split(",")]
            if etag_match or (inm is None and ims == ETAG_LAST_MODIFIED):
                self._send(304, b"", {k: v for k, v in headers.items() if k != "Content-Type"})
            elif "ttl" in q:  # the feed's own <ttl>, which a later 304 must still honour
                self._send(200, SMALL_FEED.replace(b"</description>", f"</description><ttl>{int(q['ttl'])}</ttl>".encode()), headers)
            else:
                self._send(200, SMALL_FEED, headers)
        elif name == "retry-after":
            status = int(q.get("status", "429"))
            self._send(status, b"slow down\n", {"Retry-After": q.get("after", "120")})
        else:
            self._send(404, b"no such misbehaviour\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    site: SiteServer


class SiteServer:
    """The running fixture site. ``base`` is ``http://127.0.0.1:PORT`` (no trailing slash)."""

    def __init__(self) -> None:
        self.requests = RequestLog()
        expected = json.loads((SITE_DIR / "expected.json").read_text(encoding="utf-8"))
        self.redirects: dict[str, str] = dict(expected.get("redirects", {}))
        self._routes: dict[str, Route] = {}
        self._routes_lock = threading.Lock()
        self._bomb: bytes | None = None
        self._bomb_lock = threading.Lock()
        self.jitter = 0.0  # seconds: each static file waits a random time up to this before answering
        self.jitter_rng = random.Random()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.site = self
        self.host, self.port = self._httpd.server_address[:2]
        self.base = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="siteserver", daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base + (path if path.startswith("/") else "/" + path)

    def add_route(self, path: str, status: int = 200, headers: dict[str, str] | None = None, body: bytes | str = b"") -> str:
        """Serve ``body`` with ``status``/``headers`` at ``path`` (query ignored); returns its URL."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._routes_lock:
            self._routes[path] = Route(status, dict(headers or {}), data)
        return self.url(path)

    def route_for(self, path: str) -> Route | None:
        with self._routes_lock:
            return self._routes.get(path)

    def reset_log(self) -> None:
        self.requests.reset()

    def gzip_bomb(self) -> bytes:
        """gzip of BOMB_INFLATED_BYTES zeros, built once and streaming (never 200 MB in memory)."""
        with self._bomb_lock:
            if self._bomb is None:
                buf = io.BytesIO()
                zeros = bytes(1024 * 1024)
                with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
                    for _ in range(BOMB_INFLATED_BYTES // len(zeros)):
                        gz.write(zeros)
                self._bomb = buf.getvalue()
            return self._bomb

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def site_server() -> Iterator[SiteServer]:
    """One fixture site for the whole session. Call ``reset_log()`` before asserting on the log."""
    server = SiteServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def site_server_fresh() -> Iterator[SiteServer]:
    """A private fixture site for one test (clean log and routes)."""
    server = SiteServer()
    try:
        yield server
    finally:
        server.close()


__all__ = ["SiteServer", "RequestLog", "RecordedRequest", "site_server", "site_server_fresh", "SITE_DIR"]
