"""Merge a feed entry and its extracted page into one candidate article (pure: data in, data out).

The page's text wins when it is long enough (or at least as long as what the feed carries);
otherwise the feed's own content, then its summary, then the title alone. The canonical URL
comes from the page's <link rel=canonical> when it is safe, else from where the page was fetched.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.stages.extract import MIN_TEXT_CHARS, ExtractedPage
from monitor.stages.parse import FeedEntry
from monitor.stages.sanitize import html_to_text, sanitize_html, text_to_html
from monitor.stages.textnorm import content_hash
from monitor.stages.topics import TopicRule, explain_topics
from monitor.stages.urls import safe_canonical, source_of
from monitor.storage.articles import ArticleCandidate


def build_candidate(entry: FeedEntry, link: str | None, fetched_url: str | None, page: ExtractedPage | None,
                    feed_id: int | None, rules: Sequence[TopicRule], *,
                    page_html: str | None = None) -> ArticleCandidate | None:
    """Merge what the feed entry and the page say into one candidate article (pure).

    `fetched_url` is where the page was finally fetched from (after redirects), None when the
    page was not fetched or failed. `page_html` is the raw page, kept with the article (for
    re-extraction) only when the article's text came from that page.
    """
    feed_content = html_to_text(entry.content_html) if entry.content_html else ""
    feed_summary = html_to_text(entry.summary_html) if entry.summary_html else ""
    page_text = page.text if page is not None else ""
    if len(page_text) >= MIN_TEXT_CHARS or (page_text and len(page_text) >= max(len(feed_content), len(feed_summary))):
        text, text_source, html = page_text, "page", text_to_html(page_text)
    elif feed_content:
        text, text_source, html = feed_content, "feed-content", sanitize_html(entry.content_html)
    elif feed_summary:
        text, text_source, html = feed_summary, "feed-summary", sanitize_html(entry.summary_html)
    else:
        text, text_source, html = "", "title", None
    title = (entry.title or (page.title if page else "") or "").strip()
    if not title and not text:
        return None

    fetched_url = fetched_url or link or entry.link or ""
    canonical = None
    if page is not None and page.canonical_url:
        canonical = safe_canonical(page.canonical_url, fetched_url)
    canonical = canonical or safe_canonical(fetched_url) or link
    if canonical is None:
        # An entry without any usable link: identify it by feed and guid.
        key = entry.guid or content_hash(title + "\n" + text)
        canonical = f"urn:newsmon:feed:{feed_id}:{key}"
    published = entry.published or (page.published if page else None)
    aliases = [a for a in (link,) if a]
    matches = explain_topics(title, text, rules)
    return ArticleCandidate(
        canonical_url=canonical,
        url=fetched_url or canonical,
        title=title[:2000],
        text=text,
        html=html,
        summary=feed_summary[:5000] or None,
        text_source=text_source,
        content_hash=content_hash(text if text else title),
        source=source_of(canonical) if canonical.startswith("http") else source_of(fetched_url),
        aliases=aliases,
        feed_id=feed_id,
        guid=(entry.guid or None) and entry.guid[:2048],
        published_at=published,
        language=page.language if page else None,
        author=entry.author or (page.author if page else None),
        site_name=page.site_name if page else None,
        topics=[m.name for m in matches],
        topic_details={m.name: (m.score, m.to_dict()) for m in matches},
        page_html=page_html if text_source == "page" else None,
    )
