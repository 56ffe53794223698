"""Feed parsing: turn the bytes (and response headers) of an RSS/Atom/RDF/JSON feed into `ParsedFeed`.

No network, no database: bytes in, dataclasses out. RSS/Atom/RDF/CDF go through feedparser;
JSON Feed (which feedparser 6.0.x does not read) through a small parser here.

Trust: everything in a `FeedEntry` is UNTRUSTED. In particular `summary_html` and `content_html`
are the feed's HTML *unsanitised* (feedparser's sanitiser is turned off: it costs ~2.7x parse time
and the HTML is sanitised with nh3 wherever it is shown). Never render them without sanitising.
Titles and authors are plain text (tags stripped, entities decoded), capped in length.
Links are absolute http(s) URLs resolved against the feed URL, or None.

Hostile XML, decided here before feedparser sees the bytes:
- DTDs: a feed with an internal DTD subset (`<!DOCTYPE x [...]>`) or any markup declaration
  (`<!ENTITY`, `<!ELEMENT`, ...) before its root element is refused with `FeedParseError`
  (entity expansion: billion laughs, quadratic blowup; external entities). The check runs on the
  bytes and again on the text decoded in every encoding the document may be read in (its BOM or
  first-bytes family — UTF-16/32, EBCDIC —, its declared encoding, the HTTP charset), so an
  EBCDIC or UTF-32 DTD is refused too. A DOCTYPE that only names an external DTD (RSS 0.91) is
  dropped, never fetched; feedparser also disables external entities in its SAX parser.
- Entries: at most `MAX_ENTRIES` are read; longer feeds are cut before feedparser sees them
  (parsing 10,000 entries would take seconds) and `bozo_error` says so.
- Field lengths are capped (`MAX_*`); an over-long link is dropped rather than cut.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser

from monitor.errors import NewsmonError
from monitor.stages.dates import parse_datetime, plausible

from monitor.stages.xmlguard import decoded_dtd

__all__ = ["FeedEntry", "ParsedFeed", "FeedParseError", "parse_feed", "MAX_ENTRIES"]

MAX_ENTRIES = 1000
MAX_INPUT_BYTES = 50 * 1024 * 1024  # the fetcher caps far lower; this guards direct callers
MAX_TITLE = 1000
MAX_AUTHOR = 300
MAX_URL = 4096
MAX_SUMMARY = 100_000
MAX_CONTENT = 2_000_000


class FeedParseError(NewsmonError):
    """The bytes are not a usable feed (not a feed at all, or broken with nothing recoverable)."""


@dataclass
class FeedEntry:
    guid: str | None
    link: str | None
    title: str
    summary_html: str | None  # UNTRUSTED HTML
    content_html: str | None  # UNTRUSTED HTML (content:encoded / atom:content / JSON content_html)
    published: datetime | None  # UTC-aware; None when absent or implausible (dates.plausible)
    author: str | None


@dataclass
class ParsedFeed:
    title: str | None
    link: str | None
    entries: list[FeedEntry]
    bozo_error: str | None  # short readable description when the feed was broken but usable
    ttl_minutes: int | None
    version: str | None  # feedparser's version string ("rss20", "atom10", ...) or "json1"/"json11"


def parse_feed(
    content: bytes,
    *,
    url: str,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> ParsedFeed:
    """Parse feed bytes; raise `FeedParseError` when nothing usable comes out.

    `url` is the feed's address (base for relative links); `headers` the HTTP response headers
    (Content-Type charset, Content-Location). `now` is for tests (future-date rejection).
    """
    if not isinstance(content, (bytes, bytearray)):
        raise FeedParseError(f"expected bytes, got {type(content).__name__}")
    content = bytes(content)
    if not content.strip():
        raise FeedParseError("empty response body")
    if len(content) > MAX_INPUT_BYTES:
        raise FeedParseError(f"feed is too large ({len(content)} bytes; limit {MAX_INPUT_BYTES})")
    now = now or datetime.now(timezone.utc)
    hdrs = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    base = _base_url(url, hdrs.get("content-location"))

    if _looks_like_json(content, hdrs.get("content-type", "")):
        return _parse_json_feed(content, base, now)

    data, notes = _defuse(content, _charset(hdrs.get("content-type", "")))
    hdrs["content-location"] = base  # feedparser's base URI for relative links
    # With any headers present feedparser treats a missing Content-Type as an error; the XML
    # media type without charset lets the XML declaration / BOM decide the encoding (RFC 7303).
    hdrs.setdefault("content-type", "application/xml")
    try:
        d = feedparser.parse(data, response_headers=hdrs, sanitize_html=False, resolve_relative_uris=False)
    except Exception as exc:  # feedparser is robust, but a crash here must not kill the ingest
        raise FeedParseError(f"feed parser failed: {type(exc).__name__}: {_first_line(exc)}") from None

    bozo = _bozo_message(d) if d.get("bozo") else None
    version = d.get("version") or None
    entries = [_entry(e, base, now) for e in d.get("entries", [])[:MAX_ENTRIES]]

    if not entries:
        # A well-formed feed may legitimately be empty; without entries, a broken document, an
        # HTML page or XML with nothing feed-like in it is a failure.
        html_page = _looks_like_html(content, "" if version else hdrs.get("content-type", ""))
        if bozo or html_page or not (version or d.get("feed")):
            raise FeedParseError(_not_a_feed_message(content, hdrs.get("content-type", ""), bozo))
    if notes:
        # The parser error after our cut is an artefact of the cut; report the cut itself.
        bozo = "; ".join(notes)
    f = d.get("feed", {})
    return ParsedFeed(
        title=_text(f.get("title"), MAX_TITLE) or None,
        link=_link(f.get("link"), base),
        entries=entries,
        bozo_error=bozo,
        ttl_minutes=_ttl(f.get("ttl")),
        version=version,
    )


# --------------------------------------------------------------------------------------------
# Hostile-input defusing
# --------------------------------------------------------------------------------------------

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<\w")
_ENTRY_START = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?(?:item|entry)(?=[\s>/])")


_REFUSED = ("feed has a DTD (<!DOCTYPE ... [...]> or <!ENTITY>); refused: DTDs can expand entities "
            "(billion laughs) or reference files")
def _is_wide(content: bytes) -> bool:
    """UTF-16/32 (by BOM or NUL bytes among the first four): byte-level scans do not apply."""
    head = content[:4]
    return head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head


def _defuse(content: bytes, http_charset: str | None = None) -> tuple[bytes, list[str]]:
    notes: list[str] = []
    codec = decoded_dtd(content, http_charset, skip_ascii_compatible=True)
    if codec is not None:
        raise FeedParseError(f"{_REFUSED} (in {codec})")
    if _is_wide(content):
        return content, notes

    span = _prolog_doctype(content)
    if span is not None:
        if span[2]:
            raise FeedParseError(_REFUSED)
        # A DOCTYPE that only names an external DTD (RSS 0.91 feeds carry one) is dropped; it
        # is never fetched.
        content = content[: span[0]] + content[span[1]:]
    # What feedparser treats as the document head (up to the first element) must now be free of
    # declarations; anything left means a DOCTYPE we could not delimit or one hidden in a comment.
    first = _FIRST_ELEMENT.search(content)
    head = content[: first.start() + 1] if first else content
    if _ENTITY_DECL.search(head) or _DOCTYPE.search(head):
        raise FeedParseError(_REFUSED)

    # Cut over-long feeds before parsing; the cut is mid-document, so the parser reports the
    # feed as broken and keeps the entries before it (recorded in bozo_error).
    starts = 0
    for match in _ENTRY_START.finditer(content):
        starts += 1
        if starts > MAX_ENTRIES:
            content = content[: match.start()]
            notes.append(f"more than {MAX_ENTRIES} entries; only the first {MAX_ENTRIES} were read")
            break
    return content, notes


def _prolog_doctype(data: bytes) -> tuple[int, int, bool] | None:
    """(start, end, has internal subset) of the DOCTYPE declaration in the prolog, skipping the
    XML declaration, processing instructions and comments; None when the prolog has none."""
    i = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    n = len(data)
    while i < n:
        while i < n and data[i] in b" \t\r\n":
            i += 1
        if data.startswith(b"<?", i):
            j = data.find(b"?>", i + 2)
        elif data.startswith(b"<!--", i):
            j = data.find(b"-->", i + 4)
        elif data[i : i + 9].upper() == b"<!DOCTYPE":
            found = _doctype_end(data, i + 9)
            if found is None:
                raise FeedParseError("malformed DOCTYPE declaration (never closed)")
            return i, found[0], found[1]
        else:
            return None  # the root element (or junk): the prolog is over
        if j < 0:
            return None
        i = j + 2 if data[j] == 0x3F else j + 3  # past "?>" or "-->"
    return None


def _doctype_end(data: bytes, i: int) -> tuple[int, bool] | None:
    """(index just past the DOCTYPE that starts before `i`, whether it has an internal subset
    [...]), skipping quoted strings and comments."""
    depth = 0
    subset = False
    n = len(data)
    while i < n:
        c = data[i]
        if c in (0x22, 0x27):  # " or '
            j = data.find(bytes([c]), i + 1)
            if j < 0:
                return None
            i = j + 1
            continue
        if data.startswith(b"<!--", i):
            j = data.find(b"-->", i + 4)
            if j < 0:
                return None
            i = j + 3
            continue
        if c == 0x5B:  # [
            depth += 1
            subset = True
        elif c == 0x5D:  # ]
            depth = max(0, depth - 1)
        elif c == 0x3E and depth == 0:  # >
            return i + 1, subset
        i += 1
    return None


# --------------------------------------------------------------------------------------------
# Field conversion
# --------------------------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]*>")
_WS = re.compile(r"\s+")
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip(" \"'"):
            return value.strip(" \"'")
    return None


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip().splitlines()
    return (s[0] if s else type(exc).__name__)[:200]


def _text(value: Any, limit: int) -> str:
    """Plain text from a feed field that may carry markup or entities."""
    if not value:
        return ""
    s = str(value)
    if "<" in s:
        s = _TAG.sub(" ", s)
    if "&" in s:
        s = html.unescape(s)
    s = _WS.sub(" ", _CTRL.sub("", s)).strip()
    return s[:limit]


def _html(value: str | None, content_type: str | None, limit: int) -> str | None:
    if not value:
        return None
    s = _CTRL.sub("", str(value))
    if content_type and content_type.lower() == "text/plain":
        s = html.escape(s)  # keep the field's meaning: summary_html is always HTML
    return s[:limit]


def _base_url(url: str, content_location: str | None) -> str:
    if content_location:
        candidate = urljoin(url, content_location.strip())
        if urlsplit(candidate).scheme in ("http", "https"):
            return candidate
    return url


def _link(value: Any, base: str) -> str | None:
    if not value or not isinstance(value, str):
        return None
    value = value.strip()
    try:
        absolute = urljoin(base, value)
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or len(absolute) > MAX_URL:
        return None
    if any(c.isspace() for c in absolute):
        return None
    return absolute


def _date(entry: Mapping[str, Any], now: datetime) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get bypasses FeedParserDict's deprecated updated->published key aliasing.
        t = dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)
        if t:
            try:
                # feedparser normalises to UTC struct_time.
                dt = datetime(*t[:6], tzinfo=timezone.utc)
            except (TypeError, ValueError, OverflowError):
                continue
            return dt if plausible(dt, now) else None
    return None


def _ttl(value: Any) -> int | None:
    try:
        ttl = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return ttl if 0 < ttl <= 7 * 24 * 60 else None


def _entry(e: Mapping[str, Any], base: str, now: datetime) -> FeedEntry:
    link = _link(e.get("link"), base)
    if link is None:
        for alt in e.get("links", []) or []:
            if alt.get("rel", "alternate") == "alternate":
                link = _link(alt.get("href"), base)
                if link:
                    break
    content_html = None
    contents = e.get("content") or []
    if contents:
        # Prefer an HTML body over a plain-text alternative.
        best = next((c for c in contents if "html" in (c.get("type") or "")), contents[0])
        content_html = _html(best.get("value"), best.get("type"), MAX_CONTENT)
    summary_detail = e.get("summary_detail") or {}
    guid = _text(e.get("id"), MAX_URL) or None
    return FeedEntry(
        guid=guid,
        link=link,
        title=_text(e.get("title"), MAX_TITLE),
        summary_html=_html(e.get("summary"), summary_detail.get("type"), MAX_SUMMARY),
        content_html=content_html,
        published=_date(e, now),
        author=_text(e.get("author"), MAX_AUTHOR) or None,
    )


def _bozo_message(d: Mapping[str, Any]) -> str:
    exc = d.get("bozo_exception")
    if exc is None:
        return "feed is not well-formed"
    name = type(exc).__name__
    msg = _first_line(exc)
    line = getattr(exc, "getLineNumber", None)
    if callable(line):
        try:
            msg = f"{exc.getMessage()} at line {line()}"
        except Exception:  # noqa: BLE001 - a message is all we want here
            pass
    readable = {
        "SAXParseException": "XML error",
        "CharacterEncodingOverride": "encoding mismatch",
        "CharacterEncodingUnknown": "unknown encoding",
        "NonXMLContentType": "non-XML content type",
    }.get(name, name)
    return f"{readable}: {msg}"[:300]


def _not_a_feed_message(content: bytes, content_type: str, bozo: str | None) -> str:
    if _looks_like_html(content, content_type):
        return "not a feed: the response is an HTML page"
    if not _printable_enough(content[:4096]):
        return "not a feed: the response is binary data"
    if bozo:
        return f"not a usable feed: no entries could be read ({bozo})"
    return "not a recognised feed format (RSS, Atom, RDF or JSON Feed)"


def _looks_like_html(content: bytes, content_type: str) -> bool:
    head = content[:2048].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:512] or "text/html" in content_type.lower()


def _printable_enough(sample: bytes) -> bool:
    if _is_wide(sample):
        return True
    bad = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return bad <= len(sample) // 20


# --------------------------------------------------------------------------------------------
# JSON Feed (https://jsonfeed.org/version/1.1)
# --------------------------------------------------------------------------------------------


def _looks_like_json(content: bytes, content_type: str) -> bool:
    # Sniff the body rather than trust the header: servers mislabel feeds both ways.
    return content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")


def _parse_json_feed(content: bytes, base: str, now: datetime) -> ParsedFeed:
    try:
        doc = json.loads(content.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise FeedParseError("JSON body is not UTF-8") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FeedParseError(f"not a feed: invalid JSON ({_first_line(exc)})") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith("https://jsonfeed.org/version/"):
        raise FeedParseError("not a feed: JSON document that is not a JSON Feed (no jsonfeed.org version)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise FeedParseError("JSON Feed without an 'items' list")
    feed_authors = _json_authors(doc)
    entries = []
    for item in items[:MAX_ENTRIES]:
        if not isinstance(item, dict):
            continue
        content_html = item.get("content_html") if isinstance(item.get("content_html"), str) else None
        if content_html is None and isinstance(item.get("content_text"), str):
            content_html = html.escape(item["content_text"])
        summary = item.get("summary") if isinstance(item.get("summary"), str) else None
        published = None
        for key in ("date_published", "date_modified"):
            published = parse_datetime(item.get(key), now=now)
            if published is not None or item.get(key):
                break
        ident = item.get("id")
        entries.append(
            FeedEntry(
                guid=_text(ident, MAX_URL) or None if isinstance(ident, (str, int)) else None,
                link=_link(item.get("url") if isinstance(item.get("url"), str) else item.get("external_url"), base),
                title=_text(item.get("title") if isinstance(item.get("title"), str) else "", MAX_TITLE),
                summary_html=html.escape(summary)[:MAX_SUMMARY] if summary else None,
                content_html=content_html[:MAX_CONTENT] if content_html else None,
                published=published,
                author=(_json_authors(item) or feed_authors),
            )
        )
    notes = f"more than {MAX_ENTRIES} entries; only the first {MAX_ENTRIES} were read" if len(items) > MAX_ENTRIES else None
    return ParsedFeed(
        title=_text(doc.get("title") if isinstance(doc.get("title"), str) else "", MAX_TITLE) or None,
        link=_link(doc.get("home_page_url") if isinstance(doc.get("home_page_url"), str) else None, base),
        entries=entries,
        bozo_error=notes,
        ttl_minutes=None,
        version="json" + version.rsplit("/", 1)[-1].replace(".", ""),
    )


def _json_authors(obj: Mapping[str, Any]) -> str | None:
    authors = obj.get("authors")
    if not isinstance(authors, list):
        authors = [obj.get("author")] if obj.get("author") else []
    names = [_text(a.get("name"), MAX_AUTHOR) for a in authors if isinstance(a, dict) and isinstance(a.get("name"), str)]
    joined = ", ".join(n for n in names if n)
    return joined[:MAX_AUTHOR] or None

