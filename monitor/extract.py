"""Article extraction: page HTML in, main text and metadata out (trafilatura).

Comments are left out, and the date search is the cheap one: htmldate's extensive search costs
more than the extraction itself, and the feed usually tells us the date anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import trafilatura
from lxml import etree
from trafilatura.settings import use_config
from trafilatura.utils import load_html

# A page yielding less than this is a paywall, a consent wall or an index page: prefer the
# feed's own text when that is longer.
MIN_TEXT_CHARS = 250
MAX_TREE_SIZE = 200_000  # elements; bounds the cost of pathological pages

_CONFIG = use_config()
_CONFIG.set("DEFAULT", "max_tree_size", str(MAX_TREE_SIZE))
_CONFIG.set("DEFAULT", "extensive_date_search", "off")


@dataclass(frozen=True)
class ExtractedPage:
    title: str | None
    text: str
    published: datetime | None  # UTC; midnight when the page only gives a day
    published_has_time: bool
    author: str | None
    language: str | None
    site_name: str | None
    canonical_url: str | None  # from rel=canonical / og:url, as written on the page
    description: str | None


class ExtractionError(Exception):
    """The bytes are not a page we can extract anything from."""


_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


def _page_language(tree) -> str | None:
    candidates = [tree.get("lang"), tree.get("{http://www.w3.org/XML/1998/namespace}lang")]
    for meta in tree.xpath('//meta[@property="og:locale" or @http-equiv="content-language"]')[:2]:
        candidates.append(meta.get("content"))
    for value in candidates:
        if value and _LANG_RE.match(value.strip()):
            return value.strip().split("-")[0].split("_")[0].lower()
    return None


def _parse_page_date(value: str | None, now: datetime) -> tuple[datetime | None, bool]:
    if not value:
        return None, False
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        return None, False
    dt = datetime.combine(day, time(0, 0), tzinfo=timezone.utc)
    if dt > now + timedelta(days=2):
        return None, False  # a date in the future is a parsing accident, not a publication date
    return dt, False


def _drop_repeated_headline(text: str, title: str | None) -> str:
    """Some templates put the <h1> inside the article body; the headline is not body text."""
    if not title:
        return text
    first, _, rest = text.partition("\n")
    if " ".join(first.split()).casefold() == " ".join(title.split()).casefold():
        return rest.lstrip()
    return text


def extract_page(html: bytes | str, url: str, *, now: datetime | None = None) -> ExtractedPage:
    """Extract the article body and metadata of one page (raises ExtractionError)."""
    now = now or datetime.now(timezone.utc)
    tree = load_html(html)
    if tree is None:
        raise ExtractionError("not an HTML document")
    language = _page_language(tree)
    try:
        doc = trafilatura.bare_extraction(
            tree,
            url=url,
            include_comments=False,
            with_metadata=True,
            config=_CONFIG,
            date_extraction_params={
                "extensive_search": False,
                "original_date": True,
                "max_date": (now + timedelta(days=1)).strftime("%Y-%m-%d"),
            },
        )
    except (ValueError, TypeError, etree.LxmlError) as exc:
        raise ExtractionError(f"extraction failed: {exc}") from exc
    if doc is None:
        return ExtractedPage(None, "", None, False, None, language, None, None, None)
    published, has_time = _parse_page_date(doc.date, now)
    text = _drop_repeated_headline((doc.text or "").strip(), doc.title)
    return ExtractedPage(
        title=(doc.title or None),
        text=text,
        published=published,
        published_has_time=has_time,
        author=doc.author or None,
        language=language,
        site_name=doc.sitename or None,
        canonical_url=doc.url if doc.url and doc.url != url else (doc.url or None),
        description=doc.description or None,
    )
