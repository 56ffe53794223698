"""Fetch one URL over HTTP(S) politely and safely; the only module that talks to remote sites.

Safety: every connection goes through :mod:`monitor.net.netguard` at *connect* time (see
:mod:`monitor.net.transport`: the resolved IP is checked and is what we connect to), redirects
are followed by hand and re-checked, bodies are capped while streaming (wire and decompressed
bytes), and a total deadline bounds every socket operation. Politeness: a real User-Agent,
conditional GET, Retry-After, and per-host concurrency and spacing shared by all threads using
one :class:`Fetcher`.
"""

from __future__ import annotations

import email.utils
import socket
import threading
import time
import zlib
from pathlib import Path
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import httpx

from monitor.net import netguard
from monitor.net.policy import FetchPolicy
from monitor.net.transport import GuardedTransport, fetch_deadline
from monitor.errors import NewsmonError

__all__ = ["FetchPolicy", "FetchResult", "FetchError", "FetchErrorKind", "Fetcher", "HostLimiter", "parse_retry_after"]

FetchErrorKind = Literal[
    "blocked",
    "timeout",
    "too_large",
    "too_many_redirects",
    "http_status",
    "content_type",
    "network",
    "invalid_url",
]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ACCEPT = {
    "feed": "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
    "html": "text/html, application/xhtml+xml;q=0.9, */*;q=0.5",
    "any": "*/*",
}
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchResult:
    """A completed fetch (2xx, or 304 with ``not_modified=True`` and empty content)."""

    url: str
    final_url: str
    status: int
    headers: dict[str, str]  # lower-case keys
    content: bytes
    content_type: str | None  # media type only, lower-case, e.g. "application/rss+xml"
    etag: str | None
    last_modified: str | None
    not_modified: bool
    elapsed_ms: float
    redirects: list[str] = field(default_factory=list)  # URLs that answered with a redirect, in order


class FetchError(NewsmonError):
    """A fetch that did not produce a usable response.

    ``soft`` failures (timeouts, network errors, 5xx, 408/429) are worth retrying later with a
    short backoff; hard ones (4xx, blocked, invalid URL, wrong content type, too large) are not.
    ``retry_after`` is the server's Retry-After in seconds (capped), when it sent one.
    """

    def __init__(
        self,
        url: str,
        kind: FetchErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        soft: bool = False,
    ) -> None:
        super().__init__(f"{kind}: {message} ({url})")
        self.url = url
        self.kind: FetchErrorKind = kind
        self.status = status
        self.retry_after = retry_after
        self.soft = soft


class HostLimiter:
    """At most ``concurrency`` requests in flight per host, starts spaced by ``interval`` seconds.

    Shared by all threads of one Fetcher. Each start reserves the next free slot under a lock
    and sleeps outside it, so waiting threads do not serialise on the lock.
    """

    def __init__(
        self,
        concurrency: int,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("per_host_concurrency must be >= 1")
        self._concurrency = concurrency
        self._interval = max(0.0, interval)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: dict[str, float] = {}

    def acquire(self, host: str, timeout: float | None = None) -> bool:
        """Wait for a slot for ``host``; False if none came within ``timeout``."""
        with self._lock:
            sem = self._semaphores.get(host)
            if sem is None:
                sem = self._semaphores[host] = threading.BoundedSemaphore(self._concurrency)
        if not sem.acquire(timeout=timeout if timeout is None else max(0.0, timeout)):
            return False
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start.get(host, now))
            self._next_start[host] = start + self._interval
        if start > now:
            self._sleep(start - now)
        return True

    def release(self, host: str) -> None:
        with self._lock:
            sem = self._semaphores[host]
        sem.release()


class _BoundedDecoder:
    """Streaming Content-Encoding decoder that never produces more than ``limit`` bytes.

    httpx's own decoders inflate a whole network chunk at once (a 64 KiB gzip chunk of zeros is
    ~64 MB), so we decode raw bytes ourselves with ``max_length``.
    """

    def __init__(self, encoding: str, limit: int) -> None:
        self._encoding = encoding
        self._limit = limit
        self._produced = 0
        self._obj: Any = None
        if encoding == "gzip":
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._obj = zlib.decompressobj(zlib.MAX_WBITS)
            self._first = True

    def feed(self, data: bytes) -> bytes:
        """Decode ``data``; raises OverflowError as soon as output would exceed the limit."""
        if self._obj is None:
            out = data
        else:
            out = self._inflate(data)
        self._produced += len(out)
        if self._produced > self._limit:
            raise OverflowError
        return out

    def _inflate(self, data: bytes) -> bytes:
        if self._encoding == "deflate" and self._first:
            self._first = False
            try:
                return self._drain(data)
            except zlib.error:
                # Servers often send raw deflate without the zlib header.
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._drain(data)

    def _drain(self, data: bytes) -> bytes:
        parts: list[bytes] = []
        total = 0
        budget = self._limit - self._produced + 1  # one byte over the limit proves overflow
        while data:
            chunk = self._obj.decompress(data, max(1, budget - total))
            parts.append(chunk)
            total += len(chunk)
            if total >= budget:
                raise OverflowError
            data = self._obj.unconsumed_tail
            if not chunk and not data:
                break
        return b"".join(parts)


class Fetcher:
    """Thread-safe HTTP fetcher. One instance per process; share it across worker threads."""

    def __init__(self, policy: FetchPolicy = FetchPolicy(), *, resolver: netguard.Resolver | None = None) -> None:
        self.policy = policy
        self._allow_hosts = netguard.parse_allow_hosts(policy.allow_hosts)
        self._resolver: netguard.Resolver = resolver if resolver is not None else socket.getaddrinfo
        self._limiter = HostLimiter(policy.per_host_concurrency, policy.min_host_interval)
        self._client = httpx.Client(
            transport=GuardedTransport(self._allow_hosts, self._resolver),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": policy.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(
                connect=policy.connect_timeout,
                read=policy.read_timeout,
                write=policy.read_timeout,
                pool=policy.connect_timeout,
            ),
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
        expect: Literal["feed", "html", "any"] = "any",
    ) -> FetchResult:
        """GET ``url``, following up to ``max_redirects`` redirects. Raises FetchError."""
        started = time.monotonic()
        deadline = started + self.policy.total_timeout
        headers = {"Accept": accept or _ACCEPT.get(expect, "*/*")}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        token = fetch_deadline.set(deadline)
        try:
            current = url
            redirects: list[str] = []
            while True:
                target = self._parse(url, current)
                resp_status, resp_headers, content, final = self._one_hop(url, target, headers, deadline)
                if resp_status in _REDIRECT_STATUSES:
                    location = resp_headers.get("location")
                    if not location:
                        raise FetchError(url, "http_status", f"redirect {resp_status} without Location from {final}", status=resp_status)
                    redirects.append(final)
                    if len(redirects) > self.policy.max_redirects:
                        raise FetchError(
                            url, "too_many_redirects", f"more than {self.policy.max_redirects} redirects (last: {final})", status=resp_status
                        )
                    try:
                        current = str(target.join(location))
                    except (httpx.InvalidURL, ValueError) as exc:
                        raise FetchError(url, "invalid_url", f"bad redirect Location {location!r}: {exc}") from exc
                    continue
                break
        finally:
            fetch_deadline.reset(token)

        content_type = _media_type(resp_headers.get("content-type"))
        not_modified = resp_status == 304
        if not not_modified:
            self._check_content_type(url, expect, content_type, content)
        return FetchResult(
            url=url,
            final_url=final,
            status=resp_status,
            headers=resp_headers,
            content=b"" if not_modified else content,
            content_type=content_type,
            etag=resp_headers.get("etag"),
            last_modified=resp_headers.get("last-modified"),
            not_modified=not_modified,
            elapsed_ms=(time.monotonic() - started) * 1000.0,
            redirects=redirects,
        )

    # -- one request ---------------------------------------------------------------------

    def _parse(self, url: str, current: str) -> httpx.URL:
        try:
            target = httpx.URL(current)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise FetchError(url, "invalid_url", f"cannot parse URL {current!r}: {exc}") from exc
        try:
            # Cheap pre-flight (scheme, IP literals, allow list); names are vetted at connect time.
            netguard.check_url(str(target), allow_hosts=self._allow_hosts, resolver=None)
        except netguard.BlockedAddressError as exc:
            kind: FetchErrorKind = "invalid_url" if exc.reason == "invalid" else "blocked"
            raise FetchError(url, kind, str(exc)) from exc
        return target

    def _one_hop(
        self, url: str, target: httpx.URL, headers: dict[str, str], deadline: float
    ) -> tuple[int, dict[str, str], bytes, str]:
        host = target.host
        if not self._limiter.acquire(host, timeout=deadline - time.monotonic()):
            raise FetchError(url, "timeout", f"total timeout {self.policy.total_timeout}s exceeded waiting for a slot for {host}", soft=True)
        try:
            try:
                with self._client.stream("GET", target, headers=headers) as response:
                    status = response.status_code
                    resp_headers = {k.lower(): v for k, v in response.headers.items()}
                    final = str(response.url)
                    if status in _REDIRECT_STATUSES or status == 304:
                        return status, resp_headers, b"", final
                    if not 200 <= status < 300:
                        raise self._status_error(url, status, resp_headers)
                    content = self._read_body(url, response, resp_headers)
                    return status, resp_headers, content, final
            except netguard.BlockedAddressError as exc:
                if exc.reason == "invalid":  # at connect time this means DNS failed: transient
                    raise FetchError(url, "network", str(exc), soft=True) from exc
                raise FetchError(url, "blocked", str(exc)) from exc
            except httpx.TimeoutException as exc:
                if time.monotonic() >= deadline:
                    message = f"total timeout of {self.policy.total_timeout}s exceeded"
                else:
                    message = f"{type(exc).__name__} (connect {self.policy.connect_timeout}s, read {self.policy.read_timeout}s): {exc}"
                raise FetchError(url, "timeout", message, soft=True) from exc
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                raise FetchError(url, "invalid_url", str(exc)) from exc
            except httpx.TransportError as exc:
                raise FetchError(url, "network", f"{type(exc).__name__}: {exc}", soft=True) from exc
        finally:
            self._limiter.release(host)

    def _read_body(self, url: str, response: httpx.Response, headers: dict[str, str]) -> bytes:
        cap = self.policy.max_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            raise FetchError(url, "too_large", f"Content-Length {length} exceeds cap of {cap} bytes")
        encodings = [e.strip().lower() for e in headers.get("content-encoding", "").split(",") if e.strip()]
        encodings = [e for e in encodings if e != "identity"]
        if len(encodings) > 1 or (encodings and encodings[0] not in ("gzip", "x-gzip", "deflate")):
            raise FetchError(url, "network", f"unsupported Content-Encoding {headers.get('content-encoding')!r}")
        encoding = "gzip" if encodings and encodings[0] in ("gzip", "x-gzip") else (encodings[0] if encodings else "identity")
        decoder = _BoundedDecoder(encoding, cap)
        wire = 0
        parts: list[bytes] = []
        try:
            for chunk in _iter_raw(response):
                wire += len(chunk)
                if wire > cap:
                    raise FetchError(url, "too_large", f"body exceeds cap of {cap} bytes on the wire")
                parts.append(decoder.feed(chunk))
        except OverflowError:
            raise FetchError(url, "too_large", f"decoded body exceeds cap of {cap} bytes ({encoding})") from None
        except zlib.error as exc:
            raise FetchError(url, "network", f"corrupt {encoding} body: {exc}", soft=True) from exc
        return b"".join(parts)

    def _status_error(self, url: str, status: int, headers: dict[str, str]) -> FetchError:
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(headers.get("retry-after"), cap=self.policy.max_retry_after)
        soft = status >= 500 or status in (408, 425, 429)
        suffix = f", retry after {retry_after:.0f}s" if retry_after is not None else ""
        return FetchError(url, "http_status", f"HTTP {status}{suffix}", status=status, retry_after=retry_after, soft=soft)

    @staticmethod
    def _check_content_type(url: str, expect: str, content_type: str | None, content: bytes) -> None:
        if expect not in ("feed", "html"):
            return
        reason = _wrong_content(content_type, content)
        if reason:
            raise FetchError(url, "content_type", f"expected {expect}, got {reason}")


def _iter_raw(response: httpx.Response) -> Iterator[bytes]:
    return response.iter_raw(_READ_CHUNK)


def parse_retry_after(value: str | None, *, cap: float, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or HTTP-date), clamped to [0, cap]."""
    if not value:
        return None
    value = value.strip()
    seconds: float | None = None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), cap)


def _media_type(value: str | None) -> str | None:
    if not value:
        return None
    media = value.split(";", 1)[0].strip().lower()
    return media or None


_BINARY_MAGIC = (
    (b"\x89PNG", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"%PDF-", "PDF document"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
)
_BINARY_TYPES = ("image/", "video/", "audio/", "font/")
_BINARY_EXACT = frozenset({"application/pdf", "application/zip", "application/x-shockwave-flash", "application/vnd.ms-excel", "application/msword"})


def _wrong_content(content_type: str | None, content: bytes) -> str | None:
    """Why a body cannot be a feed or a page, or None. Lenient: real feeds lie about their type."""
    if content_type and (content_type.startswith(_BINARY_TYPES) or content_type in _BINARY_EXACT):
        return f"Content-Type {content_type}"
    head = content[:1024]
    for magic, what in _BINARY_MAGIC:
        if head.startswith(magic):
            return f"{what} (Content-Type {content_type or 'missing'})"
    if content_type == "application/octet-stream" and _looks_binary(head):
        return "binary application/octet-stream"
    return None


def _looks_binary(head: bytes) -> bool:
    if not head:
        return False
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return False  # BOM: UTF-8/16 text
    control = sum(1 for b in head if b < 9 or 13 < b < 32)
    return b"\x00" in head or control / len(head) > 0.1


def read_page_file(path: str | Path, max_bytes: int) -> bytes:
    """A saved page (plain or gzip, told by its magic bytes) under the fetcher's own limits:
    at most ``max_bytes`` on disk and at most ``max_bytes`` once inflated (a gzip bomb stops at
    the cap, never in memory). Raises FetchError(too_large | network) with a one-line message."""
    path = Path(path)
    url = path.as_uri() if path.is_absolute() else str(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise FetchError(url, "too_large", f"file is {size} bytes, over the cap of {max_bytes} bytes (NEWSMON_MAX_BYTES)")
    with path.open("rb") as fh:
        head = fh.read(2)
        if head != b"\x1f\x8b":
            return head + fh.read(max_bytes)
        fh.seek(0)
        decoder = _BoundedDecoder("gzip", max_bytes)
        parts: list[bytes] = []
        try:
            while chunk := fh.read(64 * 1024):
                parts.append(decoder.feed(chunk))
        except OverflowError:
            raise FetchError(url, "too_large", f"inflates past the cap of {max_bytes} bytes (NEWSMON_MAX_BYTES)") from None
        except zlib.error as exc:
            raise FetchError(url, "network", f"not a valid gzip file: {exc}") from None
        if not decoder._obj.eof:
            raise FetchError(url, "network", "not a valid gzip file: truncated (the compressed stream ends early)")
    return b"".join(parts)
