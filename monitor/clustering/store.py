"""Dedup and story clustering against the database: keeps the in-memory story engine in step.

The engine (monitor.clustering.engine) is pure and in-memory. This module feeds it: on first use it
restores the recent window from stored decisions (no recomputation), before every new article
it catches up with articles other workers stored meanwhile, and it writes the decision
(duplicate_of, story, score, method, explanation) onto the article row in the caller's
transaction. On PostgreSQL an advisory lock serialises clustering across workers, so two
workers cannot each start a story for two write-ups of the same event.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.storage.db import Database
from monitor.storage.models import Article
from monitor.storage.articles import count_into_story, enqueue_index, refresh_story, story_row
from monitor.clustering.engine import ClusterDecision, ClusterItem, ClusterSettings, Features, StoryEngine

_ADVISORY_KEY = 727275


def to_item(article: Article) -> ClusterItem:
    return ClusterItem(
        id=str(article.id),
        url=article.canonical_url,
        source=article.source,
        title=article.title or "",
        text=article.text or "",
        published=article.published_at or article.fetched_at,
    )


def stored_decision(article: Article) -> ClusterDecision:
    return ClusterDecision(
        id=str(article.id),
        duplicate_of=str(article.duplicate_of) if article.duplicate_of is not None else None,
        duplicate_score=article.duplicate_score,
        duplicate_method=article.duplicate_method,
        story_id=str(article.story_id if article.story_id is not None else article.id),
        story_score=article.story_score,
        story_method=article.story_method or "new-story",
        explanation=article.cluster_explanation or {},
    )


class Clusterer:
    """Assigns `duplicate_of` and `story_id` to newly stored articles."""

    def __init__(self, db: Database, settings: ClusterSettings | None = None):
        self.db = db
        self.settings = settings or ClusterSettings()
        self.engine = StoryEngine(self.settings)
        self._last_seen_id = 0
        self._loaded = False
        self._primed: dict[tuple[str, str], Features] = {}

    def prime(self, title: str, content_hash: str, features: Features) -> None:
        """Hand over features computed elsewhere (an extraction process) for an article about to be stored."""
        if len(self._primed) > 10_000:  # entries whose article was never stored (duplicates): drop them
            self._primed.clear()
        self._primed[(title, content_hash)] = features

    def _catch_up(self, session: Session, *, exclude: int | None = None) -> int:
        """Restore articles stored since we last looked (by us before a restart, or by others)."""
        query = select(Article).where(Article.id > self._last_seen_id).order_by(Article.id)
        if not self._loaded and self.settings.window_days:
            # On start only the window matters: older stories cannot gain new members.
            # Articles without a date are judged by when we fetched them.
            cutoff = datetime.now(timezone.utc) - timedelta(days=self.settings.window_days)
            newest = session.scalar(select(func.max(func.coalesce(Article.published_at, Article.fetched_at))))
            if newest is not None and newest < cutoff:
                cutoff = newest - timedelta(days=self.settings.window_days)
            query = query.where(func.coalesce(Article.published_at, Article.fetched_at) >= cutoff)
        n = 0
        for article in session.scalars(query).yield_per(500):
            self._last_seen_id = max(self._last_seen_id, article.id)
            if article.id == exclude or article.story_id is None:
                continue
            self.engine.restore(to_item(article), stored_decision(article))
            n += 1
        self._loaded = True
        return n

    def assign(self, session: Session, article: Article) -> ClusterDecision:
        """Cluster one freshly inserted (flushed) article inside the caller's transaction."""
        if session.bind.dialect.name == "postgresql":
            session.execute(select(func.pg_advisory_xact_lock(_ADVISORY_KEY)))
        self._catch_up(session, exclude=article.id)
        features = self._primed.pop((article.title, article.content_hash), None)
        decision = self.engine.add(to_item(article), features)
        apply_decision(session, article, decision)
        for member_id in decision.rerooted:
            member = session.get(Article, int(member_id))
            updated = self.engine.decision_of(member_id)
            if member is not None and updated is not None:
                apply_decision(session, member, updated)
                enqueue_index(session, member.id)
        self._last_seen_id = max(self._last_seen_id, article.id)
        return decision


def apply_decision(session: Session, article: Article, decision: ClusterDecision) -> None:
    """Write a decision onto an article row and keep its story's counters right."""
    story_id = int(decision.story_id)
    old_story = article.story_id
    story_row(session, story_id, article.title)
    article.duplicate_of = int(decision.duplicate_of) if decision.duplicate_of else None
    article.duplicate_score = decision.duplicate_score
    article.duplicate_method = decision.duplicate_method
    article.story_score = decision.story_score
    article.story_method = decision.story_method
    article.cluster_explanation = decision.explanation
    if old_story == story_id:
        return
    if old_story is None:
        count_into_story(session, story_id, article)
        article.story_id = story_id
        return
    article.story_id = story_id
    session.flush()
    refresh_story(session, story_id)
    refresh_story(session, old_story)
