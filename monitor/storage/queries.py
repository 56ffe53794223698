"""Read queries for the CLI and the web UI: feeds with their state, counts, a story with its articles.

The commands and pages print what these return; none of them writes SQL of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from monitor.storage.models import Article, ArticleTopic, Feed, Story


def feed_row(f: Feed) -> dict[str, Any]:
    return {
        "id": f.id, "url": f.url, "name": f.name, "title": f.title, "enabled": f.enabled,
        "interval_minutes": f.interval_minutes, "last_status": f.last_status, "last_error": f.last_error,
        "last_fetched_at": f.last_fetched_at, "last_success_at": f.last_success_at,
        "next_fetch_at": f.next_fetch_at, "consecutive_failures": f.consecutive_failures,
        "bozo_error": f.bozo_error,
    }


def list_feeds(session: Session) -> list[Feed]:
    return list(session.scalars(select(Feed).order_by(Feed.id)))


def find_feed(session: Session, url_or_id: str) -> Feed | None:
    """A feed by its id (digits) or its exact URL."""
    if url_or_id.isascii() and url_or_id.isdigit():  # "²" is a digit to str.isdigit, not to int()
        feed_id = int(url_or_id)
        if feed_id > 2**63 - 1:  # larger than any stored id: not an overflow, just not there
            return None
        return session.get(Feed, feed_id)
    return session.scalar(select(Feed).where(Feed.url == url_or_id))


def corpus_counts(session: Session) -> dict[str, int]:
    return {
        "articles": session.scalar(select(func.count(Article.id))) or 0,
        "near_duplicates": session.scalar(select(func.count(Article.id)).where(Article.duplicate_of.is_not(None))) or 0,
        "stories": session.scalar(select(func.count(Story.id))) or 0,
    }


def story_detail(session: Session, story_id: int) -> dict[str, Any] | None:
    """A story with its articles in time order and why each is there; None when there is none."""
    if story_id > 2**63 - 1:
        return None
    st = session.get(Story, story_id)
    if st is None:
        return None
    members = session.scalars(select(Article).where(Article.story_id == story_id)
                              .order_by(Article.published_at.asc().nulls_last(), Article.id)).all()
    return {
        "id": st.id, "headline": st.headline, "first_seen": st.first_seen, "last_updated": st.last_updated,
        "article_count": st.article_count, "source_count": st.source_count,
        "articles": [
            {"id": a.id, "title": a.title, "url": a.canonical_url, "source": a.source,
             "published": a.published_at, "duplicate_of": a.duplicate_of,
             "duplicate_score": a.duplicate_score, "duplicate_method": a.duplicate_method,
             "story_score": a.story_score, "story_method": a.story_method,
             "why": a.cluster_explanation}
            for a in members
        ],
    }


# -- ops: figures for metrics, doctor and prune ----------------------------------------------


@dataclass
class OpsFigures:
    articles: int
    near_duplicates: int
    stories: int
    outbox_pending: int
    outbox_lag_seconds: float
    dead_letters: int
    feeds: int
    feeds_due: int
    feeds_overdue: int
    feeds_failing: int
    html_kept: int


def ops_figures(session: Session, *, overdue_after: timedelta, now: datetime | None = None) -> OpsFigures:
    """The database-wide numbers an operator watches (one query per figure, all cheap)."""
    from monitor.storage.models import ArticlePage, IndexDeadLetter, OutboxEntry

    now = now or datetime.now(timezone.utc)
    counts = corpus_counts(session)
    pending, oldest = session.execute(select(func.count(OutboxEntry.id), func.min(OutboxEntry.created_at))).one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=timezone.utc)
    enabled = Feed.enabled.is_(True)
    due = or_(Feed.next_fetch_at.is_(None), Feed.next_fetch_at <= now)
    return OpsFigures(
        articles=counts["articles"], near_duplicates=counts["near_duplicates"], stories=counts["stories"],
        outbox_pending=pending or 0,
        outbox_lag_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        dead_letters=session.scalar(select(func.count(IndexDeadLetter.id))) or 0,
        feeds=session.scalar(select(func.count(Feed.id)).where(enabled)) or 0,
        feeds_due=session.scalar(select(func.count(Feed.id)).where(enabled, due)) or 0,
        feeds_overdue=session.scalar(select(func.count(Feed.id)).where(
            enabled, Feed.next_fetch_at <= now - overdue_after)) or 0,
        feeds_failing=session.scalar(select(func.count(Feed.id)).where(enabled, Feed.consecutive_failures > 0)) or 0,
        html_kept=session.scalar(select(func.count(ArticlePage.article_id))) or 0,
    )


def stored_page(session: Session, article_id: int) -> tuple[str | None, str, str] | None:
    """(kept raw page HTML or None, page URL, text source) of an article; None when there is none."""
    from monitor.storage.models import ArticlePage

    if article_id > 2**63 - 1:
        return None
    row = session.execute(select(ArticlePage.html, Article.url, Article.text_source)
                          .select_from(Article).outerjoin(ArticlePage, ArticlePage.article_id == Article.id)
                          .where(Article.id == article_id)).first()
    return None if row is None else (row[0], row[1], row[2])


def feed_with_canonical_url(session: Session, canonical: str) -> tuple[int, str] | None:
    """(id, url) of the feed whose URL has this canonical form, if any (compared in Python:
    feeds are few, and the canonical form is not stored)."""
    from monitor.stages.urls import safe_canonical

    for fid, url in session.execute(select(Feed.id, Feed.url).order_by(Feed.id)):
        if url == canonical or safe_canonical(url) == canonical:
            return fid, url
    return None


# --------------------------------------------------------------------------------------------
# Web UI (monitor/web): article detail, story members with names, feed health, export rows, users
# --------------------------------------------------------------------------------------------


def source_names(session: Session, article_ids: list[int]) -> dict[int, str]:
    """The publication's name for each article (site name, else the feed's name or title, else the host)."""
    if not article_ids:
        return {}
    rows = session.execute(
        select(Article.id, Article.site_name, Feed.name, Feed.title, Article.source)
        .outerjoin(Feed, Feed.id == Article.feed_id).where(Article.id.in_(article_ids))
    ).all()
    return {r[0]: r[1] or r[2] or r[3] or r[4] for r in rows}


def story_sources(session: Session, story_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per story: article and source counts and the publications' names (for collapsed results)."""
    if not story_ids:
        return {}
    out: dict[int, dict[str, Any]] = {}
    for st in session.scalars(select(Story).where(Story.id.in_(story_ids))):
        out[st.id] = {"article_count": st.article_count, "source_count": st.source_count, "sources": []}
    rows = session.execute(
        select(Article.story_id, func.coalesce(Article.site_name, Feed.name, Feed.title, Article.source))
        .outerjoin(Feed, Feed.id == Article.feed_id).where(Article.story_id.in_(story_ids))
        .group_by(Article.story_id, func.coalesce(Article.site_name, Feed.name, Feed.title, Article.source))
    ).all()
    for sid, name in rows:
        if sid in out:
            out[sid]["sources"].append(name)
    for info in out.values():
        info["sources"].sort(key=str.casefold)
    return out


def article_detail(session: Session, article_id: int) -> dict[str, Any] | None:
    """One article with its source name, story and topics; None when there is none."""
    if article_id > 2**63 - 1:
        return None
    a = session.get(Article, article_id)
    if a is None:
        return None
    feed = session.get(Feed, a.feed_id) if a.feed_id else None
    story = session.get(Story, a.story_id) if a.story_id else None
    return {
        "id": a.id, "title": a.title, "url": a.canonical_url, "link": a.url, "source": a.source,
        "source_name": a.site_name or (feed.name or feed.title if feed else None) or a.source,
        "feed_id": a.feed_id, "author": a.author, "published": a.published_at, "fetched": a.fetched_at,
        "language": a.language, "text": a.text, "html": a.html, "text_source": a.text_source,
        "word_count": len(a.text.split()), "duplicate_of": a.duplicate_of,
        "duplicate_method": a.duplicate_method, "duplicate_score": a.duplicate_score,
        "story_id": a.story_id, "story_headline": story.headline if story else None,
        "story_size": story.article_count if story else None,
        "story_method": a.story_method, "story_score": a.story_score, "why": a.cluster_explanation,
        "topics": article_topics(session, a.id),
    }


def feed_health(session: Session, now) -> list[dict[str, Any]]:
    """Every feed with its state and the articles stored from it in the last 24 hours and 7 days."""
    from datetime import timedelta

    day_ago, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    counts: dict[int, list[int]] = {}
    rows = session.execute(
        select(Article.feed_id, func.count(Article.id),
               func.sum(case((Article.fetched_at >= day_ago, 1), else_=0)))
        .where(Article.fetched_at >= week_ago, Article.feed_id.is_not(None)).group_by(Article.feed_id)
    ).all()
    for fid, week, day in rows:
        counts[fid] = [int(day or 0), int(week or 0)]
    totals = dict(session.execute(select(Article.feed_id, func.count(Article.id))
                                  .where(Article.feed_id.is_not(None)).group_by(Article.feed_id)).all())
    out = []
    for f in list_feeds(session):
        row = feed_row(f)
        row["articles_24h"], row["articles_7d"] = counts.get(f.id, [0, 0])
        row["articles_total"] = int(totals.get(f.id, 0))
        row["last_new_article_at"] = f.last_new_article_at
        out.append(row)
    return out


def export_rows(session: Session, article_ids: list[int], *, with_text: bool) -> dict[int, dict[str, Any]]:
    """The export columns of a batch of articles, keyed by id (one query for articles, one for topics)."""
    from monitor.storage.models import ArticleTopic

    if not article_ids:
        return {}
    cols = [Article.id, Article.published_at, Article.source,
            func.coalesce(Article.site_name, Feed.name, Feed.title), Article.title,
            Article.canonical_url, Article.story_id, Story.article_count, Article.language, Article.author,
            Article.text, Article.duplicate_of]
    rows = session.execute(select(*cols).outerjoin(Story, Story.id == Article.story_id)
                           .outerjoin(Feed, Feed.id == Article.feed_id)
                           .where(Article.id.in_(article_ids))).all()
    topics: dict[int, list[str]] = {}
    for aid, topic in session.execute(select(ArticleTopic.article_id, ArticleTopic.topic)
                                      .where(ArticleTopic.article_id.in_(article_ids))
                                      .order_by(ArticleTopic.topic)):
        topics.setdefault(aid, []).append(topic)
    out = {}
    for r in rows:
        item = {"id": r[0], "published": r[1], "source": r[2], "source_name": r[3] or r[2], "title": r[4],
                "url": r[5], "topics": topics.get(r[0], []), "story_id": r[6], "story_size": r[7],
                "language": r[8], "author": r[9], "word_count": len(r[10].split()), "duplicate_of": r[11]}
        if with_text:
            item["text"] = r[10]
        out[r[0]] = item
    return out


def story_day_counts(session: Session, story_id: int) -> dict:
    """Articles of one story per UTC day of publication (for the story's own timeline)."""
    counts: dict = {}
    for (published,) in session.execute(select(Article.published_at).where(Article.story_id == story_id)):
        if published is not None:
            counts[published.date()] = counts.get(published.date(), 0) + 1
    return counts


def find_user(session: Session, email: str):
    from monitor.storage.models import User

    return session.scalar(select(User).where(User.email == email.strip().lower()))


def list_users(session: Session) -> list:
    from monitor.storage.models import User

    return list(session.scalars(select(User).order_by(User.email)))


def names_of_sources(session: Session, hosts: list[str]) -> dict[str, str]:
    """A publication name seen for each source host (for facet labels): one indexed lookup per host."""
    out: dict[str, str] = {}
    for host in hosts:
        row = session.execute(
            select(func.coalesce(Article.site_name, Feed.name, Feed.title))
            .outerjoin(Feed, Feed.id == Article.feed_id).where(Article.source == host)
            .where(func.coalesce(Article.site_name, Feed.name, Feed.title).is_not(None))
            .order_by(Article.id.desc()).limit(1)
        ).first()
        if row:
            out[host] = row[0]
    return out


def article_topics(session: Session, article_id: int) -> list[dict[str, Any]]:
    """An article's topics with score and explanation (for the API and the article page).

    Each entry: {"topic", "score", "reason", "explanation"}; `reason` is one readable line,
    `explanation` the tagger's full record (terms found, signals, requirements). Tags stored
    before explanations existed have score and explanation None. Empty for an unknown id.
    """
    return topics_for_articles(session, [article_id]).get(article_id, [])


def topics_for_articles(session: Session, article_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """`article_topics` for many articles in one query (search results): id -> entries."""
    ids = [i for i in article_ids if 0 < i <= 2**63 - 1]
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = session.scalars(select(ArticleTopic).where(ArticleTopic.article_id.in_(ids))
                           .order_by(ArticleTopic.article_id, ArticleTopic.topic))
    for t in rows:
        expl = t.explanation or None
        out[t.article_id].append({
            "topic": t.topic, "score": t.score,
            "reason": expl.get("reason") if isinstance(expl, dict) else None,
            "explanation": expl,
        })
    return out
