"""Dedup and story clustering against the database: keeps the in-memory story engine in step.

The engine (monitor.clustering.engine) is pure and in-memory. This module feeds it and keeps it
equal to what the database holds:

- on first use it rebuilds the window from stored decisions (no re-deciding), in the order they
  were made, plus the IDF of the latest originals — the state a process that never stopped has;
- every save starts with `begin`: the clustering lock (PostgreSQL: a transaction advisory lock;
  SQLite: an flock beside the database file), then one statement that says whether other
  workers stored articles meanwhile (they are restored) and whether `recluster` changed the
  clustering generation (the engine is rebuilt);
- new articles get their ids in one draw per transaction (`draw_ids`: a batch of n articles, one
  statement on PostgreSQL), and their decisions go into their INSERTs (no UPDATE after);
- if the transaction does not commit, the engine holds a decision the database does not: it is
  marked stale and rebuilt from the database before the next article (never a ghost decision;
  ids are allocated under the lock, so a rolled-back id is never inherited by another article
  as "already decided").

`recluster` takes the same lock for its whole run and bumps the generation when done.
"""

from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import event, func, select, text, update
from sqlalchemy.orm import Session

from monitor.clustering.engine import (ArticleFeatures, ClusterDecision, ClusterItem, ClusterSettings,
                                       StoryEngine, StoryMethod)
from monitor.storage.articles import refresh_story
from monitor.storage.db import Database
from monitor.storage.models import Article, ClusterState, Story, utcnow

log = logging.getLogger(__name__)

ADVISORY_KEY = 727275
_EVICT_STEP = 3600.0
_COPY = StoryMethod.COPY_OF_MEMBER.value


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
        story_method=article.story_method or StoryMethod.NEW_STORY,
        explanation=article.cluster_explanation or {},
    )


def _lock_path(db: Database) -> str | None:
    database = db.engine.url.database
    if db.dialect != "sqlite" or not database or database == ":memory:":
        return None
    return f"{database}.cluster-lock"


@contextmanager
def clustering_lock(db: Database) -> Iterator[None]:
    """Hold the clustering lock for a whole operation (recluster): live saves wait meanwhile."""
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(select(func.pg_advisory_lock(ADVISORY_KEY)))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(select(func.pg_advisory_unlock(ADVISORY_KEY)))
                conn.commit()
        return
    path = _lock_path(db)
    if path is None:
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def bump_generation(session: Session) -> None:
    """Tell running workers that stored decisions changed under them (they rebuild their engine)."""
    session.execute(update(ClusterState).where(ClusterState.id == 1)
                    .values(generation=ClusterState.generation + 1, updated_at=utcnow()))


class Clusterer:
    """Assigns `duplicate_of` and `story_id` to newly stored articles (see the module docstring)."""

    def __init__(self, db: Database, settings: ClusterSettings | None = None):
        self.db = db
        self.settings = settings or ClusterSettings()
        self.engine = StoryEngine(self.settings)
        self._last_seen_id = 0
        self._generation: int | None = None
        self._loaded = False
        self._stale = False
        self._max_id: int | None = None
        self._primed: dict[tuple[str, str], ArticleFeatures] = {}
        self._lock_file = None
        self.rebuilds = 0

    def prime(self, title: str, content_hash: str, features: ArticleFeatures) -> None:
        """Hand over features computed elsewhere (an extraction process) for an article about to be stored."""
        if len(self._primed) > 10_000:  # entries whose article was never stored (duplicates): drop them
            self._primed.clear()
        self._primed[(title, content_hash)] = features

    # -- one transaction -------------------------------------------------------------------

    def begin(self, session: Session) -> None:
        """Take the clustering lock for this transaction and bring the engine up to date."""
        self._hook(session)
        if session.bind.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})
        else:
            self._flock()
        max_id, generation = session.execute(select(
            select(func.max(Article.id)).scalar_subquery(),
            select(ClusterState.generation).where(ClusterState.id == 1).scalar_subquery(),
        )).one()
        # SQLite hands out max(id) + 1 (`draw_ids`); we hold the only clustering writer's lock.
        self._max_id = max_id or 0
        if self._stale or (self._generation is not None and generation != self._generation):
            self._reset()
        self._generation = generation
        if not self._loaded:
            self._load(session)
        elif max_id is not None and max_id > self._last_seen_id:
            self._catch_up(session)

    def draw_ids(self, session: Session, n: int) -> list[int]:
        """`n` ids for the new articles of this transaction, ascending (after `begin`, under the lock).

        Drawn under the lock, so they grow in commit order and "id > last seen" finds every
        article other workers stored; a rolled-back id is never handed out again (PostgreSQL:
        sequence values are never reused; SQLite: the engine is rebuilt before the next save,
        so the reused id carries no stale decision).
        """
        if n <= 0:
            return []
        if self._max_id is None:
            raise RuntimeError("Clusterer.begin must run first in this transaction")
        if session.bind.dialect.name == "postgresql":
            return sorted(session.scalars(text(
                "SELECT nextval(pg_get_serial_sequence('articles', 'id')) FROM generate_series(1, :n)"), {"n": n}))
        first, self._max_id = self._max_id + 1, self._max_id + n
        return list(range(first, first + n))

    def cluster(self, session: Session, item: ClusterItem, title: str, content_hash: str) -> ClusterDecision:
        """Decide copy/story for one new article of this transaction (the engine takes it at once,
        so the next article of the batch is decided against it). If the transaction does not
        commit, the engine is rebuilt from the database before the next save."""
        session.info["newsmon.cluster_changed"] = True
        key = (title, content_hash)
        # Kept until commit: a batch that rolls back is retried article by article.
        session.info.setdefault("newsmon.primed_used", []).append(key)
        decision = self.engine.add(item, self._primed.get(key))
        self._last_seen_id = max(self._last_seen_id, int(item.id))
        return decision

    def mark_stale(self) -> None:
        """The engine may hold a decision the database does not: rebuild it before the next article."""
        self._stale = True

    # -- keeping the engine equal to the database ------------------------------------------

    def _hook(self, session: Session) -> None:
        if session.info.get("newsmon.cluster_hooked"):
            return
        session.info["newsmon.cluster_hooked"] = True
        event.listen(session, "after_commit", self._after_commit)
        event.listen(session, "after_transaction_end", self._after_transaction_end)

    def _after_commit(self, session: Session) -> None:
        session.info.pop("newsmon.cluster_changed", None)
        for key in session.info.pop("newsmon.primed_used", ()):
            self._primed.pop(key, None)

    def _after_transaction_end(self, session: Session, transaction) -> None:
        if transaction.parent is not None or transaction.nested:
            return
        session.info.pop("newsmon.primed_used", None)
        self._max_id = None
        if session.info.pop("newsmon.cluster_changed", False):
            log.warning("a clustered save did not commit; rebuilding the clustering state from the database")
            self._stale = True
        self._unflock()

    def _flock(self) -> None:
        path = _lock_path(self.db)
        if path is None or self._lock_file is not None:
            return
        f = open(path, "a+b")
        fcntl.flock(f, fcntl.LOCK_EX)
        self._lock_file = f

    def _unflock(self) -> None:
        f, self._lock_file = self._lock_file, None
        if f is not None:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()

    def _reset(self) -> None:
        self.engine = StoryEngine(self.settings)
        self._last_seen_id = 0
        self._loaded = False
        self._stale = False
        self.rebuilds += 1

    def _load(self, session: Session) -> None:
        """Rebuild the engine from stored decisions: the window, plus the IDF of the latest originals."""
        when = func.coalesce(Article.published_at, Article.fetched_at)
        s = self.settings
        newest = session.scalar(select(func.max(when)))
        cutoff = None
        if newest is not None and s.window_days:
            ts = newest.replace(tzinfo=newest.tzinfo or timezone.utc).timestamp()
            # The running engine evicts at whole hours of article time (see engine._auto_evict).
            cutoff = datetime.fromtimestamp((ts - s.window_days * 86400.0) // _EVICT_STEP * _EVICT_STEP,
                                            tz=timezone.utc)
        window = select(Article.id)
        if cutoff is not None:
            window = window.where(when >= cutoff)
        originals = (select(Article.id).where(func.coalesce(Article.story_method, "") != _COPY,
                                              Article.story_id.is_not(None))
                     .order_by(Article.id.desc()).limit(s.idf_docs))
        ids = set(session.scalars(window)) | set(session.scalars(originals))
        for chunk in _chunks(sorted(ids), 500):
            for article in session.scalars(select(Article).where(Article.id.in_(chunk)).order_by(Article.id)):
                self._restore(article, cutoff)
        self._last_seen_id = max([self._last_seen_id, *ids]) if ids else self._last_seen_id
        self._loaded = True

    def _restore(self, article: Article, cutoff: datetime | None) -> None:
        self._last_seen_id = max(self._last_seen_id, article.id)
        if article.story_id is None:
            return
        when = article.published_at or article.fetched_at
        if cutoff is not None and when < cutoff:
            self.engine.restore_counts(to_item(article))
        else:
            self.engine.restore(to_item(article), stored_decision(article))

    def _catch_up(self, session: Session) -> None:
        """Restore articles other workers stored since we last looked."""
        query = select(Article).where(Article.id > self._last_seen_id).order_by(Article.id)
        for article in session.scalars(query).yield_per(500):
            self._restore(article, None)


def decision_fields(decision: ClusterDecision) -> dict:
    """The article columns a decision sets (story_id aside)."""
    return dict(
        duplicate_of=int(decision.duplicate_of) if decision.duplicate_of else None,
        duplicate_score=decision.duplicate_score,
        duplicate_method=None if decision.duplicate_method is None else str(decision.duplicate_method),
        story_score=decision.story_score,
        story_method=str(decision.story_method),
        cluster_explanation=decision.explanation,
    )


def _set_decision_fields(article: Article, decision: ClusterDecision) -> None:
    for name, value in decision_fields(decision).items():
        setattr(article, name, value)


def apply_decision(session: Session, article: Article, decision: ClusterDecision) -> None:
    """Write a (changed) decision onto a stored article row and keep its stories' counters right."""
    from monitor.storage.articles import story_row

    story_id = int(decision.story_id)
    old_story = article.story_id
    story_row(session, story_id, article.title)
    _set_decision_fields(article, decision)
    if old_story == story_id:
        return
    article.story_id = story_id
    session.flush()
    refresh_story(session, story_id)
    if old_story is not None:
        refresh_story(session, old_story)


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]

