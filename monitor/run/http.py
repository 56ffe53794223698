"""The worker's operator endpoint (`newsmon run --http ADDR`): /healthz and /metrics.

/healthz answers 200 when the database answers and the last pass finished recently (or the
worker is still within its first pass), 503 with the reasons otherwise; the body is JSON.
/metrics is the Prometheus text format of `monitor.run.metrics.REGISTRY`. The server runs in
daemon threads beside the scheduler and never touches the pipeline.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import text

from monitor.config import ConfigError
from monitor.run import metrics

log = logging.getLogger(__name__)

DB_CHECK_TIMEOUT = 5.0


def parse_address(value: str) -> tuple[str, int]:
    """'127.0.0.1:9464', '[::1]:9464', ':9464' (all interfaces) or '9464' -> (host, port)."""
    raw = value.strip()
    host, sep, port = raw.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", raw
    host = host.strip("[]") if host else "0.0.0.0"
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--http: expected HOST:PORT such as 127.0.0.1:9464, got {value!r}") from None
    if not 0 < number < 65536:
        raise ConfigError(f"--http: port must be 1-65535, got {number}")
    return host, number


@dataclass
class Health:
    ok: bool
    reasons: list[str]
    last_pass_age_seconds: float | None

    def as_dict(self) -> dict:
        return {"status": "ok" if self.ok else "unhealthy", "reasons": self.reasons,
                "last_pass_age_seconds": self.last_pass_age_seconds}


class HealthCheck:
    """Decides /healthz: the database answers, and a pass finished within `stale_after` seconds."""

    def __init__(self, db, stale_after: float) -> None:
        self.db = db
        self.stale_after = stale_after
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="healthz")

    def _ping(self) -> None:
        with self.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def check(self) -> Health:
        reasons = []
        try:
            self._pool.submit(self._ping).result(timeout=DB_CHECK_TIMEOUT)
        except FutureTimeout:
            reasons.append(f"database did not answer within {DB_CHECK_TIMEOUT:.0f} s")
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            reasons.append(f"database unavailable: {str(exc).splitlines()[0][:300]}")
        age = metrics.CLOCK.age()
        if age is None:
            since_start = time.monotonic() - metrics.CLOCK.started
            if since_start > self.stale_after:
                reasons.append(f"no pass has finished in the {since_start:.0f} s since start")
        elif age > self.stale_after:
            reasons.append(f"last pass finished {age:.0f} s ago (more than {self.stale_after:.0f} s)")
        if metrics.CLOCK.last_error:
            reasons.append(f"last pass failed: {metrics.CLOCK.last_error[:300]}")
        return Health(not reasons, reasons, None if age is None else round(age, 1))


def _handler(health: HealthCheck):
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    class Handler(BaseHTTPRequestHandler):
        server_version = "newsmon"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                h = health.check()
                self._send(200 if h.ok else 503, "application/json", json.dumps(h.as_dict()).encode())
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(metrics.REGISTRY))
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            log.debug("http: " + fmt, *args)

    return Handler


class OpsServer:
    """The /healthz + /metrics server in a daemon thread; `close()` stops it."""

    def __init__(self, address: str, db, *, stale_after: float) -> None:
        host, port = parse_address(address)
        metrics.register_database(db)
        self.health = HealthCheck(db, stale_after)
        try:
            self.httpd = ThreadingHTTPServer((host, port), _handler(self.health))
        except OSError as exc:
            raise ConfigError(f"--http {address}: cannot listen there: {exc.strerror or exc}") from None
        self.httpd.daemon_threads = True
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ops-http", daemon=True)
        self._thread.start()
        log.warning("serving /healthz and /metrics on http://%s", self.address)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
