"""`newsmon retag`: apply the current topic rules to stored articles, resumably and beside ingest.

Work goes in batches by article id. Each batch is read in one short transaction, tagged outside
any transaction, and written in a second short one that also moves the checkpoint, so a killed
run redoes at most one batch and continues where it stopped. An article whose row changed
between the read and the write (an ingest re-saved it, with its own fresh tag decision) is left
alone: retag never overwrites a newer decision. Changed tag sets go to the index outbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

from sqlalchemy import or_, select

from monitor.stages.topics import TopicTagger, TopicRule
from monitor.storage.articles import enqueue_index, set_topics
from monitor.storage.db import Database
from monitor.storage.models import Article, RetagCheckpoint, utcnow


@dataclass
class RetagResult:
    processed: int = 0
    changed: int = 0
    skipped_newer: int = 0
    resumed_from: int = 0
    already_done: bool = False
    key: str = ""

    def to_dict(self) -> dict:
        return {"processed": self.processed, "changed": self.changed, "skipped_newer": self.skipped_newer,
                "resumed_from": self.resumed_from, "already_done": self.already_done, "checkpoint": self.key}


def rules_fingerprint(rules: Sequence[TopicRule]) -> str:
    """Short stable hash of a rule set: a checkpoint belongs to exactly one version of the rules."""
    return hashlib.sha256(repr(tuple(rules)).encode("utf-8")).hexdigest()[:16]


def retag(
    db: Database,
    rules: Sequence[TopicRule],
    *,
    since: date | None = None,
    batch_size: int = 200,
    restart: bool = False,
    progress: Callable[[int], None] | None = None,
    total_hint: Callable[[int], None] | None = None,
    after_read: Callable[[list[int]], None] | None = None,
) -> RetagResult:
    """Retag every article (published or fetched from `since`), continuing a stopped run.

    `progress(n)` after each written batch; `total_hint(n)` once with the articles left;
    `after_read(ids)` between reading a batch and writing it (for progress displays and for
    tests that play a concurrent ingest).
    """
    tagger = TopicTagger(rules)
    key = f"{rules_fingerprint(rules)}:{since.isoformat() if since else 'all'}"
    result = RetagResult(key=key)
    since_dt = datetime.combine(since, time.min, tzinfo=timezone.utc) if since else None

    with db.session() as s:
        cp = s.get(RetagCheckpoint, key)
        if cp is None:
            cp = RetagCheckpoint(key=key, last_article_id=0, processed=0, changed=0, skipped_newer=0)
            s.add(cp)
        elif restart:
            cp.last_article_id, cp.processed, cp.changed, cp.skipped_newer, cp.finished_at = 0, 0, 0, 0, None
            cp.started_at = utcnow()
        elif cp.finished_at is not None:
            result.already_done = True
            return result
        last = cp.last_article_id
        result.resumed_from = last
        if total_hint is not None:
            total_hint(_remaining(s, last, since_dt))

    while True:
        with db.session() as s:
            q = select(Article.id, Article.title, Article.text, Article.updated_at).where(Article.id > last)
            if since_dt is not None:
                q = q.where(or_(Article.published_at >= since_dt,
                                (Article.published_at.is_(None)) & (Article.fetched_at >= since_dt)))
            rows = s.execute(q.order_by(Article.id).limit(batch_size)).all()
        if not rows:
            break
        decisions = {}
        for r in rows:
            matches = tagger.assigned(r.title or "", r.text or "")
            decisions[r.id] = (r.updated_at, [m.name for m in matches], {m.name: (m.score, m.to_dict()) for m in matches})
        if after_read is not None:
            after_read([r.id for r in rows])
        changed = skipped = 0
        with db.session() as s:
            arts = s.scalars(select(Article).where(Article.id.in_(list(decisions))).with_for_update()).all()
            for art in arts:
                seen_at, names, details = decisions[art.id]
                if art.updated_at != seen_at:
                    skipped += 1  # re-saved by an ingest since we read it: its tags are newer
                    continue
                if set_topics(s, art, names, details):
                    enqueue_index(s, art.id)
                    changed += 1
            last = rows[-1].id
            cp = s.get(RetagCheckpoint, key)
            cp.last_article_id = last
            cp.processed += len(rows)
            cp.changed += changed
            cp.skipped_newer += skipped
            cp.updated_at = utcnow()
        result.processed += len(rows)
        result.changed += changed
        result.skipped_newer += skipped
        if progress is not None:
            progress(len(rows))

    with db.session() as s:
        cp = s.get(RetagCheckpoint, key)
        cp.finished_at = utcnow()
    return result


def _remaining(s, last: int, since_dt: datetime | None) -> int:
    from sqlalchemy import func

    q = select(func.count(Article.id)).where(Article.id > last)
    if since_dt is not None:
        q = q.where(or_(Article.published_at >= since_dt,
                        (Article.published_at.is_(None)) & (Article.fetched_at >= since_dt)))
    return s.scalar(q) or 0
