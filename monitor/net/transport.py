"""The httpx transport under `Fetcher`: every connection is vetted by netguard and bounded by the fetch deadline.

Built only from public APIs: an `httpx.BaseTransport` (httpx's documented way to plug in custom
transports) over an `httpcore.ConnectionPool` with our own `network_backend`, which is how
httpcore lets a caller decide where sockets go. httpx's own `HTTPTransport` has no public way to
pass a network backend, so this module does the small request/response translation itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from monitor.net import netguard

__all__ = ["GuardedTransport", "fetch_deadline"]

# The deadline of the fetch running on this thread; the guarded network stream clamps every
# socket timeout to it so a slow trickle cannot outlive total_timeout.
fetch_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("newsmon_fetch_deadline", default=None)


def _clamp(timeout: float | None, *, exc: type[Exception]) -> float | None:
    deadline = fetch_deadline.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise exc("total timeout exceeded")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """Wraps a socket stream so each read/write/TLS handshake ends by the fetch deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, exc=httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, exc=httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _clamp(timeout, exc=httpcore.ConnectTimeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves with the injected resolver, vets every answer, connects to a vetted IP.

    httpcore passes the URL host here and uses it (not the IP) for SNI and the Host header,
    so TLS verification and virtual hosting keep working while the socket goes to the IP we
    checked — no second DNS lookup an attacker could rebind.
    """

    def __init__(self, allow_hosts: frozenset[str], resolver: netguard.Resolver) -> None:
        self._allow_hosts = allow_hosts
        self._resolver = resolver
        self._sync = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        ips = netguard.check_host(host, port, allow_hosts=self._allow_hosts, resolver=self._resolver)
        last_exc: Exception | None = None
        for ip in ips:
            try:
                stream = self._sync.connect_tcp(
                    ip,
                    port,
                    timeout=_clamp(timeout, exc=httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_exc = exc  # try the next vetted address, like socket.create_connection does
                continue
            return _DeadlineStream(stream)
        assert last_exc is not None
        raise last_exc

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise netguard.BlockedAddressError("unix sockets are not fetchable", reason="scheme")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# httpcore's errors as the httpx ones callers catch; the most specific class wins
# (ConnectTimeout before TimeoutException), so subclasses are listed before their bases.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise  # netguard.BlockedAddressError and anything else pass through unchanged


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class GuardedTransport(httpx.BaseTransport):
    """HTTP/1.1 over a connection pool whose every socket goes to an IP netguard vetted."""

    def __init__(self, allow_hosts: frozenset[str], resolver: netguard.Resolver) -> None:
        # No proxies ever: a proxy, not us, would resolve the target and bypass the guard.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_GuardedBackend(allow_hosts, resolver),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()
