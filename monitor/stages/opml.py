"""OPML import/export of feed lists (the format feed readers exchange subscriptions in).

Import parses untrusted XML with defusedxml (no DTDs, no entities, no external resources) and
returns `FeedConfig`s; export writes OPML 2.0 text. Topic hints travel in a namespaced
`newsmon:topics` attribute so a round trip keeps them; other readers ignore it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime, timezone
from email.utils import format_datetime
from urllib.parse import urlsplit

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from monitor.config import FeedConfig
from monitor.errors import NewsmonError
from monitor.stages.xmlguard import decoded_dtd

__all__ = ["OpmlError", "export_opml", "import_opml", "MAX_OPML_BYTES", "MAX_OPML_FEEDS"]

MAX_OPML_BYTES = 5 * 1024 * 1024
MAX_OPML_FEEDS = 5000
_NS = "https://newsmon.invalid/opml"  # namespace for our own attributes; never fetched


class OpmlError(NewsmonError, ValueError):
    """The OPML document cannot be imported; the message says why."""


def export_opml(feeds: Iterable[FeedConfig], *, title: str = "newsmon feeds", now: datetime | None = None) -> str:
    ET.register_namespace("newsmon", _NS)
    root = ET.Element("opml", {"version": "2.0"})
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(timezone.utc), usegmt=True)
    body = ET.SubElement(root, "body")
    for feed in feeds:
        name = feed.name or feed.url
        attrs = {"type": "rss", "text": name, "title": name, "xmlUrl": feed.url}
        if feed.topics_hint:
            attrs[f"{{{_NS}}}topics"] = ",".join(feed.topics_hint)
        if not feed.enabled:
            attrs[f"{{{_NS}}}enabled"] = "false"
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def import_opml(data: bytes | str) -> list[FeedConfig]:
    """Feeds from an OPML document (outlines with xmlUrl, at any nesting depth), in document order.

    Outlines without an http(s) xmlUrl are skipped (folders, links); duplicate URLs are kept once.
    Raises `OpmlError` for documents that are not OPML, are unsafe XML, or contain no feeds.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not data.strip():
        raise OpmlError("empty OPML document")
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(f"OPML document too large ({len(data)} bytes; limit {MAX_OPML_BYTES})")
    codec = decoded_dtd(data, any_doctype=True)
    if codec is not None:
        raise OpmlError(f"unsafe XML refused (a DTD in {codec}: DTDs and entities are not allowed in OPML)")
    try:
        root = DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise OpmlError(f"unsafe XML refused ({type(exc).__name__}: DTDs and entities are not allowed in OPML)") from None
    except ET.ParseError as exc:
        line, col = getattr(exc, "position", (None, None))
        where = f" at line {line}, column {col}" if line else ""
        raise OpmlError(f"not well-formed XML{where}: {str(exc).split(':')[0]}") from None
    if _local(root.tag).lower() != "opml":
        raise OpmlError(f"not an OPML document (root element is <{_local(root.tag)}>, expected <opml>)")
    body = next((c for c in root if _local(c.tag).lower() == "body"), None)
    if body is None:
        raise OpmlError("OPML document has no <body>")

    feeds: list[FeedConfig] = []
    seen: set[str] = set()
    for outline in body.iter():
        if _local(outline.tag).lower() != "outline":
            continue
        attrs = {_local(k).lower(): v for k, v in outline.attrib.items()}
        url = (attrs.get("xmlurl") or "").strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
            continue
        if url.lower() in seen:
            continue
        seen.add(url.lower())
        name = (attrs.get("title") or attrs.get("text") or "").strip() or None
        topics = [t.strip() for t in (outline.attrib.get(f"{{{_NS}}}topics") or "").split(",") if t.strip()]
        enabled = (outline.attrib.get(f"{{{_NS}}}enabled") or "true").strip().lower() != "false"
        feeds.append(FeedConfig(url=url, name=name[:300] if name else None, topics_hint=topics, enabled=enabled))
        if len(feeds) > MAX_OPML_FEEDS:
            raise OpmlError(f"OPML document lists more than {MAX_OPML_FEEDS} feeds")
    if not feeds:
        raise OpmlError("OPML document contains no feed (no <outline> with an http(s) xmlUrl)")
    return feeds


def _local(tag: object) -> str:
    # ElementTree writes namespaced names as "{uri}local"; comments/PIs have non-str tags.
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]
