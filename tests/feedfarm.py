"""A local server of many generated feeds and their article pages, some of them misbehaving.

`FeedFarm(feeds=200, items=3, faulty=0.3)` serves `/f/<i>.xml` (RSS 2.0, `items` entries) and
`/p/<i>/<j>.html` (an article page with generated, distinct text) on one or several loopback
addresses (127.0.0.x only; feed i lives on host i % len(hosts)). A `faulty` share of the feeds
misbehave, cycling through FAULTS: hang 25 s before answering, trickle a byte every 0.5 s,
answer 500, send garbage, redirect in a loop, or stream an endless body.

`faulty_hosts=("127.0.0.9", ...)` puts the faulty feeds on hosts of their own (the k-th faulty
feed on faulty_hosts[k % len(faulty_hosts)]); the healthy feeds stay where they would be without
faults (host i % len(hosts)), so a run with and without faults places the healthy feeds the same
way. Why: on the real web a faulty feed is a faulty site, and a worker allows only
NEWSMON_HOST_CONCURRENCY requests in flight per host, a slow one included; with faulty and healthy
feeds mixed on one host, the hanging requests hold the healthy feeds' host slots, which measures
a farm artefact rather than the loop. Every request is
logged with its arrival time and User-Agent (tests give each worker its own), so tests can say
which worker fetched what and when. Every slow route is bounded in time; threads are daemons.

Used by tests/test_workers.py and benchmarks/feeds_scale.py.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

FAULTS = ("hang", "trickle", "error", "garbage", "loop", "endless")
HANG_SECONDS = 25.0  # longer than the default 20 s read timeout
SLOW_ROUTE_MAX_SECONDS = 70.0
EPOCH = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fe", "gi", "ho", "ju", "pe", "zo", "an", "er", "il", "on")


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(n)]


@dataclass(frozen=True)
class Hit:
    path: str
    host: str
    agent: str
    arrived: float  # time.monotonic()


class FeedFarm:
    """See the module docstring."""

    def __init__(self, feeds: int, items: int, *, faulty: float = 0.0, hosts: tuple[str, ...] = ("127.0.0.1",),
                 faulty_hosts: tuple[str, ...] = (), latency: float = 0.0, seed: int = 7) -> None:
        overlap = set(hosts) & set(faulty_hosts)
        if overlap:
            raise ValueError(f"faulty_hosts must differ from hosts: {sorted(overlap)}")
        for host in (*hosts, *faulty_hosts):
            if not host.startswith("127."):
                raise ValueError(f"loopback addresses only, not {host}")
        self.n_feeds, self.items, self.latency, self.seed = feeds, items, latency, seed
        # Faulty feeds spread evenly over the range (Bresenham), each kind in turn.
        picked = [i for i in range(feeds) if int((i + 1) * faulty) > int(i * faulty)]
        self.faults: dict[int, str] = {i: FAULTS[k % len(FAULTS)] for k, i in enumerate(picked)}
        self._faulty_rank = {i: k for k, i in enumerate(picked)}
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self.origins: list[str] = []  # the regular hosts' origins, then the faulty hosts'
        self._n_regular = len(hosts)
        port = 0
        for host in (*hosts, *faulty_hosts):
            server = ThreadingHTTPServer((host, port), self._handler())
            server.daemon_threads = True
            server.request_queue_size = 256
            port = port or server.server_address[1]  # the same port on every address
            self._servers.append(server)
            self.origins.append(f"http://{host}:{server.server_address[1]}")
            threading.Thread(target=server.serve_forever, daemon=True, name=f"feedfarm-{host}").start()

    # -- what is served ----------------------------------------------------------------------

    def origin_of(self, feed: int) -> str:
        n_faulty_hosts = len(self.origins) - self._n_regular
        if n_faulty_hosts and feed in self.faults:
            return self.origins[self._n_regular + self._faulty_rank[feed] % n_faulty_hosts]
        return self.origins[feed % self._n_regular]

    def feed_url(self, feed: int) -> str:
        return f"{self.origin_of(feed)}/f/{feed}.xml"

    def page_url(self, feed: int, item: int) -> str:
        return f"{self.origin_of(feed)}/p/{feed}/{item}.html"

    @property
    def healthy(self) -> list[int]:
        return [i for i in range(self.n_feeds) if i not in self.faults]

    def expected_pages(self) -> set[str]:
        """Canonical URLs a clean run stores: every item of every healthy feed."""
        return {self.page_url(i, j) for i in self.healthy for j in range(self.items)}

    def published(self, feed: int, item: int) -> datetime:
        return EPOCH + timedelta(minutes=7 * item + feed % 60, seconds=feed)

    def _title(self, feed: int, item: int) -> str:
        rng = random.Random(f"{self.seed}-t-{feed}-{item}")
        return " ".join(_words(rng, 7)).capitalize() + f" ({feed}.{item})"

    def feed_xml(self, feed: int) -> bytes:
        items = []
        for j in range(self.items):
            items.append(
                f"<item><title>{escape(self._title(feed, j))}</title><link>{self.page_url(feed, j)}</link>"
                f"<guid>{self.page_url(feed, j)}</guid><pubDate>{format_datetime(self.published(feed, j))}</pubDate>"
                f"<description>{escape(self._title(feed, j))}</description></item>"
            )
        return (f'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Farm feed {feed}</title>'
                f"<link>{self.origin_of(feed)}/</link><description>generated</description>{''.join(items)}"
                "</channel></rss>\n").encode()

    def page_html(self, feed: int, item: int) -> bytes:
        rng = random.Random(f"{self.seed}-p-{feed}-{item}")
        paras = "".join(f"<p>{' '.join(_words(rng, 60)).capitalize()}.</p>" for _ in range(6))
        title = escape(self._title(feed, item))
        return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
                f'<link rel="canonical" href="{self.page_url(feed, item)}"></head><body><nav>Home | World</nav>'
                f"<article><h1>{title}</h1>{paras}</article><footer>Farm</footer></body></html>").encode()

    # -- the log -----------------------------------------------------------------------------

    def _log(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def feed_hits(self, feed: int) -> list[Hit]:
        path = f"/f/{feed}.xml"
        with self._lock:
            return [h for h in self.hits if h.path == path]

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # -- the handler -------------------------------------------------------------------------

    def _handler(self):
        farm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - stdlib signature
                pass

            def do_GET(self):  # noqa: N802 - stdlib name
                path = self.path.split("?", 1)[0]
                farm._log(Hit(path, self.server.server_address[0], self.headers.get("user-agent", ""), time.monotonic()))
                if farm.latency:
                    time.sleep(farm.latency)
                try:
                    parts = path.strip("/").split("/")
                    if len(parts) == 2 and parts[0] == "f" and parts[1].endswith(".xml"):
                        feed = int(parts[1][:-4])
                        if feed in farm.faults:
                            return self._fault(farm.faults[feed], feed)
                        return self._send(200, farm.feed_xml(feed), "application/rss+xml; charset=utf-8")
                    if len(parts) == 3 and parts[0] == "p" and parts[2].endswith(".html"):
                        return self._send(200, farm.page_html(int(parts[1]), int(parts[2][:-5])), "text/html; charset=utf-8")
                    if len(parts) == 2 and parts[0] == "loop":
                        n = int(parts[1])
                        return self._send(302, b"", "text/plain", {"Location": f"/loop/{n + 1}"})
                except (ValueError, OSError):
                    pass
                self._send(404, b"not found", "text/plain")

            def _send(self, status, body, ctype, headers=None):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    self.close_connection = True

            def _fault(self, kind, feed):
                started = time.monotonic()
                self.close_connection = True
                try:
                    if kind == "hang":
                        time.sleep(HANG_SECONDS)
                        return self._send(200, farm.feed_xml(feed), "application/rss+xml")
                    if kind == "error":
                        return self._send(500, b"internal error", "text/plain")
                    if kind == "garbage":
                        rng = random.Random(feed)
                        return self._send(200, bytes(rng.getrandbits(8) for _ in range(4000)), "application/rss+xml")
                    if kind == "loop":
                        return self._send(302, b"", "text/plain", {"Location": "/loop/0"})
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.end_headers()
                    if kind == "trickle":
                        self.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel>')
                        while time.monotonic() - started < SLOW_ROUTE_MAX_SECONDS:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                            time.sleep(0.5)
                    else:  # endless: a body that never ends (the client's size cap must stop it)
                        chunk = b"<item><title>x</title></item>" * 2000
                        while time.monotonic() - started < SLOW_ROUTE_MAX_SECONDS:
                            self.wfile.write(chunk)
                            time.sleep(0.05)
                except (OSError, socket.timeout):
                    pass

        return Handler
