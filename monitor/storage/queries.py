"""Read queries for the CLI and the web UI: feeds with their state, counts, a story with its articles.

The commands and pages print what these return; none of them writes SQL of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from monitor.storage.models import Article, Feed, Story


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
    from monitor.storage.models import IndexDeadLetter, OutboxEntry

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
        html_kept=session.scalar(select(func.count(Article.id)).where(Article.html.is_not(None))) or 0,
    )


def stored_page(session: Session, article_id: int) -> tuple[str | None, str, str] | None:
    """(kept page HTML or None, page URL, text source) of an article; None when there is none."""
    if article_id > 2**63 - 1:
        return None
    row = session.execute(select(Article.html, Article.url, Article.text_source).where(Article.id == article_id)).first()
    return None if row is None else (row[0], row[1], row[2])


def feed_with_canonical_url(session: Session, canonical: str) -> tuple[int, str] | None:
    """(id, url) of the feed whose URL has this canonical form, if any (compared in Python:
    feeds are few, and the canonical form is not stored)."""
    from monitor.stages.urls import safe_canonical

    for fid, url in session.execute(select(Feed.id, Feed.url).order_by(Feed.id)):
        if url == canonical or safe_canonical(url) == canonical:
            return fid, url
    return None
