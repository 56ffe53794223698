"""Storing articles: exact-duplicate folding, URL aliases, cluster decisions and the index outbox.

One call to `save_article` is one transaction: the article row, its URLs, topics, story and the
outbox entry for the search index are written together or not at all. Re-saving an article
that is already known (same canonical URL, a known alias, or the same normalised text) updates
the existing row instead of adding a new one, so re-running any feed is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.storage.models import Article, ArticlePage, ArticleTopic, ArticleUrl, OutboxEntry, Story, utcnow
from monitor.stages.urls import safe_canonical

# Below this much text a hash match says little (two empty or one-line bodies).
MIN_TEXT_FOR_HASH = 200
TEXT_SOURCE_RANK = {"page": 3, "feed-content": 2, "feed-summary": 1, "title": 0}


@dataclass
class ArticleCandidate:
    """An article as the pipeline assembled it, before we know whether it is new."""

    canonical_url: str
    url: str  # the address the stored text was read from
    title: str
    text: str
    text_source: Literal["page", "feed-content", "feed-summary", "title"]
    content_hash: str
    source: str
    aliases: list[str] = field(default_factory=list)  # other canonicalised URLs (feed link, redirects)
    feed_id: int | None = None
    guid: str | None = None
    html: str | None = None
    summary: str | None = None
    page_html: str | None = None  # the raw page the text came from, kept for re-extraction
    published_at: datetime | None = None
    language: str | None = None
    author: str | None = None
    site_name: str | None = None
    topics: list[str] = field(default_factory=list)
    # topic -> (score, explanation) from the tagger; stored beside each tag.
    topic_details: dict[str, tuple[float, dict]] = field(default_factory=dict)


@dataclass(frozen=True)
class SaveOutcome:
    article_id: int
    status: Literal["new", "updated", "duplicate-url", "duplicate-hash"]


def known_article_id(session: Session, url: str) -> int | None:
    """The article stored under this (canonical) URL, if any."""
    return session.scalar(select(ArticleUrl.article_id).where(ArticleUrl.url == url))


def _add_aliases(session: Session, article_id: int, urls: list[tuple[str, str]], feed_id: int | None,
                 *, all_new: bool = False) -> None:
    """Record the URLs under which an article was seen (`all_new`: none of them is known yet)."""
    urls = [(u, r) for u, r in dict(urls).items() if u]
    if not all_new and urls:
        known = set(session.scalars(select(ArticleUrl.url).where(ArticleUrl.url.in_([u for u, _ in urls]))))
        urls = [(u, r) for u, r in urls if u not in known]
    session.add_all([ArticleUrl(url=url, article_id=article_id, feed_id=feed_id, relation=relation)
                     for url, relation in urls])


def enqueue_index(session: Session, article_id: int, op: str = "upsert") -> None:
    session.add(OutboxEntry(article_id=article_id, op=op))


def _candidate_urls(cand: ArticleCandidate) -> list[tuple[str, str]]:
    urls = [(cand.canonical_url, "canonical")]
    fetched = safe_canonical(cand.url)
    if fetched and fetched != cand.canonical_url:
        urls.append((fetched, "redirect"))
    urls += [(a, "link") for a in cand.aliases if a and a != cand.canonical_url and a != fetched]
    return urls


def _is_self_canonical(article: Article) -> bool:
    return safe_canonical(article.url) == article.canonical_url


def _should_replace(existing: Article, cand: ArticleCandidate) -> bool:
    """Replace stored text only with better text: a real page over a feed summary, or the
    canonical page itself over a syndicated copy that pointed at it."""
    if TEXT_SOURCE_RANK[cand.text_source] > TEXT_SOURCE_RANK.get(existing.text_source, 0):
        return True
    cand_self = safe_canonical(cand.url) == cand.canonical_url
    return cand.text_source == "page" and cand_self and not _is_self_canonical(existing)


def _apply_fields(article: Article, cand: ArticleCandidate) -> None:
    article.url = cand.url
    article.title = cand.title
    article.text = cand.text
    article.html = cand.html
    article.summary = cand.summary
    article.text_source = cand.text_source
    article.content_hash = cand.content_hash
    article.source = cand.source
    article.language = cand.language or article.language
    article.author = cand.author or article.author
    article.site_name = cand.site_name or article.site_name
    article.published_at = article.published_at or cand.published_at
    article.updated_at = utcnow()


def existing_lookups(cand: ArticleCandidate) -> list:
    """Scalar subqueries: the article stored under one of the candidate's URLs; the first with its text."""
    # Every stored article's canonical URL is one of its ArticleUrl rows, so one lookup covers
    # the canonical URL, the feed link and the redirect target.
    urls = [u for u, _ in _candidate_urls(cand)]
    lookups = [select(ArticleUrl.article_id).where(ArticleUrl.url.in_(urls)).limit(1).scalar_subquery()]
    if len(cand.text) >= MIN_TEXT_FOR_HASH:
        lookups.append(select(Article.id).where(Article.content_hash == cand.content_hash)
                       .order_by(Article.id).limit(1).scalar_subquery())
    return lookups


def _resolve(session: Session, found: tuple) -> tuple[Article | None, str]:
    url_id, hash_id = (tuple(found) + (None,))[:2]
    if url_id is not None:
        return session.get(Article, url_id), "duplicate-url"
    if hash_id is not None:
        return session.get(Article, hash_id), "duplicate-hash"
    return None, "new"


def find_existing(session: Session, cand: ArticleCandidate) -> tuple[Article | None, str]:
    """The stored article this candidate is (by any of its URLs, else by its text), in one query."""
    return _resolve(session, session.execute(select(*existing_lookups(cand))).one())


def save_article(session: Session, cand: ArticleCandidate, clusterer=None) -> SaveOutcome:
    """Insert or update one article in the caller's transaction (see module docstring).

    `clusterer` (a `monitor.clustering.store.Clusterer`) decides duplicate_of / story for new
    articles; it takes the clustering lock first, so the lookup and the insert below cannot race
    another clustering writer, and the decision goes into the article's INSERT.
    """
    if clusterer is not None:
        # Under the clustering lock, in the same statement that brings the engine up to date.
        existing, how = _resolve(session, clusterer.begin(session, existing_lookups(cand)))
    else:
        existing, how = find_existing(session, cand)
    if existing is not None:
        urls = _candidate_urls(cand)
        if how == "duplicate-hash":
            urls = [(u, "exact-copy") for u, _ in urls]
        _add_aliases(session, existing.id, urls, cand.feed_id)
        if how == "duplicate-url" and _should_replace(existing, cand):
            _apply_fields(existing, cand)
            _keep_page(session, existing.id, cand)
            set_topics(session, existing, cand.topics, cand.topic_details)
            enqueue_index(session, existing.id)
            return SaveOutcome(existing.id, "updated")
        return SaveOutcome(existing.id, how)

    article = Article(
        canonical_url=cand.canonical_url,
        url=cand.url,
        feed_id=cand.feed_id,
        guid=cand.guid,
        fetched_at=utcnow(),
    )
    _apply_fields(article, cand)
    if clusterer is not None:
        # The id is drawn under the clustering lock, so the decision, the URLs, topics and the
        # outbox entry all go out with the article's INSERT at the next flush (no UPDATE after).
        article.id = clusterer.next_id()
        try:
            clusterer.decide(session, article)
        except BaseException:
            clusterer.mark_stale()
            raise
        set_topics(session, article, cand.topics, cand.topic_details)
        session.add(article)
        if cand.page_html is not None:
            session.add(ArticlePage(article_id=article.id, url=cand.url[:2048], html=cand.page_html, fetched_at=utcnow()))
        _add_aliases(session, article.id, _candidate_urls(cand), cand.feed_id, all_new=True)
        enqueue_index(session, article.id)
        return SaveOutcome(article.id, "new")
    session.add(article)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # Another writer stored the same canonical URL between our lookup and insert.
        session.expunge(article)
        existing = session.scalar(select(Article).where(Article.canonical_url == cand.canonical_url))
        if existing is None:
            raise
        _add_aliases(session, existing.id, _candidate_urls(cand), cand.feed_id)
        return SaveOutcome(existing.id, "duplicate-url")
    _add_aliases(session, article.id, _candidate_urls(cand), cand.feed_id, all_new=True)
    _keep_page(session, article.id, cand)
    set_topics(session, article, cand.topics, cand.topic_details)
    enqueue_index(session, article.id)
    return SaveOutcome(article.id, "new")


def _keep_page(session: Session, article_id: int, cand: ArticleCandidate) -> None:
    """Keep the raw page beside the article (replacing an older one); retention prunes it."""
    if cand.page_html is None:
        return
    page = session.get(ArticlePage, article_id)
    if page is None:
        session.add(ArticlePage(article_id=article_id, url=cand.url[:2048], html=cand.page_html, fetched_at=utcnow()))
    else:
        page.url, page.html, page.fetched_at = cand.url[:2048], cand.page_html, utcnow()


def set_topics(session: Session, article: Article, topics: list[str],
               details: dict[str, tuple[float, dict]] | None = None) -> bool:
    """Make the article's tags exactly `topics`, with score and explanation; True if the names changed."""
    details = details or {}
    wanted = set(topics)
    before = {t.topic for t in article.topics}
    for t in list(article.topics):
        if t.topic not in wanted:
            article.topics.remove(t)
    for t in article.topics:
        if t.topic in details:
            t.score, t.explanation = details[t.topic]
    for name in sorted(wanted - before):
        score, explanation = details.get(name, (None, None))
        article.topics.append(ArticleTopic(topic=name, score=score, explanation=explanation))
    return before != wanted


def story_row(session: Session, story_id: int, headline: str) -> Story:
    """The story's row, created (and flushed, for the articles' foreign key) on first use.

    A story's id is its first article's id, which also makes that article its headline.
    """
    story = session.get(Story, story_id)
    if story is None:
        story = Story(id=story_id, headline=headline, headline_article_id=story_id, article_count=0, source_count=0)
        session.add(story)
        session.flush()
    return story


def refresh_story(session: Session, story_id: int) -> Story:
    """Recount a story's counters from its member articles (after members moved)."""
    story = session.get(Story, story_id)
    session.flush()
    count, sources, first, last = session.execute(
        select(
            func.count(Article.id),
            func.count(func.distinct(Article.source)),
            func.min(Article.published_at),
            func.max(Article.fetched_at),
        ).where(Article.story_id == story_id)
    ).one()
    story.article_count = count
    story.source_count = sources
    story.first_seen = first or story.first_seen
    story.last_updated = last or utcnow()
    return story
