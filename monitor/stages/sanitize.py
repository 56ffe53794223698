"""HTML safety and conversion: untrusted HTML from feeds and pages becomes safe HTML or plain text.

Anything shown in the web UI or an email passes through `sanitize_html` (nh3, an allow-list
sanitiser). Images are dropped on purpose: remote images are tracking pixels in an email.
"""

from __future__ import annotations

import html as html_lib
import re

import lxml.html
import nh3
from lxml import etree

ALLOWED_TAGS = {
    "p", "br", "a", "em", "strong", "b", "i", "u", "blockquote", "q", "cite", "ul", "ol", "li",
    "h2", "h3", "h4", "h5", "h6", "pre", "code", "table", "thead", "tbody", "tr", "th", "td",
    "figure", "figcaption", "sup", "sub", "hr", "abbr", "time", "span",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "time": {"datetime"}, "th": {"scope"}}
_BLOCK_TAGS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "pre", "section", "article"}
_WS = re.compile(r"[ \t\r\f\v]+")


def sanitize_html(fragment: str | None) -> str:
    """Return HTML safe to embed in our pages: allow-listed tags, http(s)/mailto links only."""
    if not fragment:
        return ""
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def html_to_text(fragment: str | None) -> str:
    """Plain text of an HTML fragment, one paragraph per line (for feed content fallbacks)."""
    if not fragment or not fragment.strip():
        return ""
    if "<" not in fragment:
        return html_lib.unescape(fragment).strip()
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return html_lib.unescape(re.sub(r"<[^>]*>", " ", fragment)).strip()
    for bad in root.xpath("//script|//style|//noscript|//iframe|//object|//embed"):
        bad.drop_tree()
    parts: list[str] = []
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag in _BLOCK_TAGS:
            parts.append("\n")
        if el.text and isinstance(el.tag, str):
            parts.append(el.text)
        if el.tail:
            parts.append(el.tail)
    lines = (_WS.sub(" ", line).strip() for line in "".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)


def text_to_html(text: str) -> str:
    """Safe HTML for extracted plain text: one escaped <p> per paragraph."""
    return "\n".join(f"<p>{html_lib.escape(line)}</p>" for line in text.splitlines() if line.strip())
