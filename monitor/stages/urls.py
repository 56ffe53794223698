"""URL canonicalisation and source naming.

Canonical form: lower-case scheme and host, default port dropped, fragment dropped, tracking
parameters (utm_*, fbclid, gclid, …) removed, remaining query parameters sorted. Everything that
can change the page (path, other parameters) is kept. courlan (a trafilatura dependency) does
the heavy lifting; we add the rules it leaves optional.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from courlan import normalize_url

from monitor.errors import NewsmonError

# courlan strips the common trackers; these are the ones news sites add on top of them.
_EXTRA_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|igshid|yclid|_ga|_gl|"
    r"ocid|cmpid|smid|sr_share|share|ns_source|ns_mchannel|ns_campaign|ito|at_medium|"
    r"at_campaign|at_custom\d|ref_src|taid)$",
    re.IGNORECASE,
)


class InvalidURLError(NewsmonError, ValueError):
    """The string is not an absolute http(s) URL."""


def canonicalize_url(url: str, base: str | None = None) -> str:
    """Return the canonical form of an article URL (raises InvalidURLError)."""
    url = (url or "").strip()
    if base:
        url = urljoin(base, url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidURLError(f"not an absolute http(s) URL: {url[:200]!r}")
    try:
        normalised = normalize_url(url, strict=False, trailing_slash=True)
    except (ValueError, UnicodeError) as exc:
        raise InvalidURLError(f"cannot normalise URL {url[:200]!r}: {exc}") from exc
    parts = urlsplit(normalised)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _EXTRA_TRACKING.match(k)]
    query.sort()
    # urljoin applies RFC 3986 dot-segment removal, which courlan leaves to the server.
    path = urlsplit(urljoin(f"{parts.scheme}://{parts.netloc}/", parts.path or "/")).path
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query, doseq=True), ""))


def source_of(url: str) -> str:
    """The outlet a URL belongs to: its host, lower-case, without 'www.' and port."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return host[4:] if host.startswith("www.") else host


def safe_canonical(url: str, base: str | None = None) -> str | None:
    try:
        return canonicalize_url(url, base)
    except InvalidURLError:
        return None
