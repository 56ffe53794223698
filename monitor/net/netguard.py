"""Decide whether a URL, host or IP address may be fetched (SSRF guard).

Only http/https to globally routable unicast addresses is allowed, unless the host is
explicitly listed in an allow list (config ``NEWSMON_ALLOW_HOSTS``; the caller passes it in).
Every address a name resolves to is checked; one forbidden answer refuses the host.

This module only *decides*; it never opens a connection. ``monitor.net.fetch`` calls
:func:`check_host` at connect time and connects to the vetted IPs it returns, so DNS
rebinding and redirects cannot slip past the decision.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from monitor.errors import NewsmonError

__all__ = [
    "BlockedAddressError",
    "IPAddress",
    "Resolver",
    "ALLOWED_SCHEMES",
    "parse_allow_hosts",
    "parse_ip_literal",
    "is_forbidden_ip",
    "is_host_allowed",
    "check_host",
    "check_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Same shape as socket.getaddrinfo(host, port, family, type) -> [(family, type, proto, canonname, sockaddr)]
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Belt and braces on top of ``ipaddress``' own flags: these ranges are never a news site,
# and some of them are not flagged consistently across Python versions.
_EXTRA_FORBIDDEN: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 connects to localhost on Linux
        "100.64.0.0/10",  # CGNAT shared address space
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "240.0.0.0/4",  # reserved, incl. broadcast
        "64:ff9b:1::/48",  # local-use NAT64
        "fc00::/7",  # unique local
        "fec0::/10",  # deprecated site-local
    )
)


class BlockedAddressError(NewsmonError):
    """A URL or host was refused by the guard.

    ``reason`` is one of ``"scheme"`` (not http/https), ``"invalid"`` (no usable host, or the
    resolver failed) or ``"address"`` (resolves to a forbidden address).
    """

    def __init__(self, message: str, *, host: str | None = None, reason: str = "address") -> None:
        super().__init__(message)
        self.host = host
        self.reason = reason


def parse_allow_hosts(value: str | Iterable[str] | None) -> frozenset[str]:
    """Normalise an allow list: ``"127.0.0.1, localhost:8080,[::1]"`` -> frozenset of entries.

    Entries are hosts (name or IP) with an optional port; IP literals are canonicalised so
    ``0:0::1`` and ``::1`` match each other.
    """
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    out: set[str] = set()
    for raw in items:
        entry = raw.strip().lower()
        if not entry:
            continue
        host, port = _split_host_port(entry)
        out.add(_allow_key(host, port))
    return frozenset(out)


def parse_ip_literal(host: str) -> IPAddress | None:
    """Return the address a host string denotes as an IP literal, else None.

    Accepts the legacy IPv4 spellings that inet_aton/browsers accept (``2130706433``,
    ``0x7f.1``, ``0177.0.0.1``) because resolvers turn them into addresses too, and an
    attacker would use exactly those to get past a dotted-quad check.
    """
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.endswith(".") and not h.endswith(".."):
        h = h[:-1]
    if not h:
        return None
    if ":" in h:
        try:
            return ipaddress.IPv6Address(h)
        except ValueError:
            return None
    try:
        return ipaddress.IPv4Address(h)
    except ValueError:
        pass
    return _parse_legacy_ipv4(h)


def _parse_legacy_ipv4(h: str) -> ipaddress.IPv4Address | None:
    parts = h.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    nums: list[int] = []
    for p in parts:
        if not p:
            return None
        try:
            if p.startswith(("0x", "0X")):
                n = int(p[2:], 16) if len(p) > 2 else 0
            elif len(p) > 1 and p.startswith("0"):
                n = int(p[1:], 8)
            else:
                if not p.isdigit():
                    return None
                n = int(p, 10)
        except ValueError:
            return None
        nums.append(n)
    # inet_aton semantics: the last part fills all remaining bytes.
    *head, last = nums
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for n in head:
        value = (value << 8) | n
    value = (value << (8 * (4 - len(head)))) | last
    return ipaddress.IPv4Address(value)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """IPv4 address carried inside an IPv6 one (mapped, 6to4, Teredo, NAT64, compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    packed = int(ip)
    if ip in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if packed >> 32 == 0 and packed > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def is_forbidden_ip(ip: IPAddress | str) -> bool:
    """True if the address is not a globally routable unicast address."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0]) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            addr = ipaddress.IPv6Address(str(addr).split("%", 1)[0])
        inner = _embedded_ipv4(addr)
        if inner is not None and is_forbidden_ip(inner):
            return True
    if (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
        or not addr.is_global
    ):
        return True
    return any(addr.version == net.version and addr in net for net in _EXTRA_FORBIDDEN)


def is_host_allowed(host: str, port: int | None, allow_hosts: Iterable[str]) -> bool:
    """True if ``host`` (or ``host:port``) is explicitly listed in the allow list."""
    allowed = allow_hosts if isinstance(allow_hosts, frozenset) else parse_allow_hosts(allow_hosts)
    if not allowed:
        return False
    h = _normalise_host(host)
    return _allow_key(h, None) in allowed or (port is not None and _allow_key(h, port) in allowed)


def check_host(
    host: str,
    port: int,
    *,
    allow_hosts: Iterable[str] = (),
    resolver: Resolver | None = socket.getaddrinfo,
) -> list[str]:
    """Vet a host and return the IP strings it is safe to connect to, in resolver order.

    IP literals (any spelling) are decided without the resolver. Names are resolved with
    ``resolver`` and *every* answer must pass, since the socket may pick any of them.
    With ``resolver=None`` names are not resolved and ``[]`` is returned for them
    (a cheap pre-flight check; the connect-time check must still run).

    Raises BlockedAddressError.
    """
    h = _normalise_host(host)
    if not h:
        raise BlockedAddressError("URL has no host", host=host, reason="invalid")
    allowed = is_host_allowed(h, port, allow_hosts)
    literal = parse_ip_literal(h)
    if literal is not None:
        if not allowed and is_forbidden_ip(literal):
            raise BlockedAddressError(
                f"refusing {host!r}: {literal} is a private/loopback/reserved address "
                f"(add it to NEWSMON_ALLOW_HOSTS to allow it)",
                host=host,
            )
        return [str(literal)]
    if resolver is None:
        return []
    try:
        answers = resolver(h, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise BlockedAddressError(f"cannot resolve {host!r}: {exc}", host=host, reason="invalid") from exc
    ips: list[str] = []
    for info in answers:
        ip_text = str(info[4][0])
        if ip_text not in ips:
            ips.append(ip_text)
    if not ips:
        raise BlockedAddressError(f"{host!r} resolved to no address", host=host, reason="invalid")
    if not allowed:
        bad = [ip for ip in ips if is_forbidden_ip(ip)]
        if bad:
            raise BlockedAddressError(
                f"refusing {host!r}: resolves to forbidden address(es) {', '.join(bad)} "
                f"(add the host to NEWSMON_ALLOW_HOSTS to allow it)",
                host=host,
            )
    return ips


def check_url(
    url: str,
    *,
    allow_hosts: Iterable[str] = (),
    resolver: Resolver | None = socket.getaddrinfo,
) -> list[str]:
    """Vet a URL: scheme must be http/https and its host must pass :func:`check_host`.

    Returns the vetted IPs (``[]`` for names when ``resolver`` is None). Raises BlockedAddressError.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BlockedAddressError(f"invalid URL {url!r}: {exc}", reason="invalid") from exc
    scheme = parts.scheme.lower()
    if not scheme:
        raise BlockedAddressError(f"invalid URL {url!r}: not an absolute http(s) URL", reason="invalid")
    if scheme not in ALLOWED_SCHEMES:
        raise BlockedAddressError(
            f"refusing {url!r}: scheme {scheme or '(none)'!r} is not http or https", reason="scheme"
        )
    host = parts.hostname or ""
    if not host:
        raise BlockedAddressError(f"invalid URL {url!r}: no host", reason="invalid")
    if port is None:
        port = 443 if scheme == "https" else 80
    return check_host(host, port, allow_hosts=allow_hosts, resolver=resolver)


def _normalise_host(host: str) -> str:
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    return h.rstrip(".") if not h.endswith("..") else h


def _allow_key(host: str, port: int | None) -> str:
    h = _normalise_host(host)
    ip = parse_ip_literal(h)
    if ip is not None:
        h = str(ip)
    if port is None:
        return h
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"


def _split_host_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        end = entry.find("]")
        if end == -1:
            return entry[1:], None
        host, rest = entry[1:end], entry[end + 1 :]
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None
