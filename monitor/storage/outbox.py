"""Index sync: drains the outbox into the search backend, and rebuilds the index from the database.

The outbox row is deleted only after the backend has confirmed the batch (for Meilisearch: the
task succeeded). When the backend is down the rows stay, the pipeline keeps storing, and the
next drain sends everything. A document the backend refuses is isolated by bisecting its batch
and, after a few refusals, parked in the dead letters with its error (`newsmon index --retry-dead`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.storage.db import Database
from monitor.storage.models import Article, IndexDeadLetter, OutboxEntry
from search.documents import SearchDocument
from search.backend import BackendUnavailable, SearchBackend, SearchBackendError

log = logging.getLogger(__name__)


@dataclass
class DrainResult:
    sent: int = 0
    deleted: int = 0
    batches: int = 0
    error: str | None = None       # the backend is down: the drain stopped, nothing was charged
    remaining: int = 0
    rejected: int = 0              # entries the backend refused this time (their attempts grew)
    dead_lettered: int = 0         # entries moved to the dead letters this time
    rejections: list[str] = field(default_factory=list)  # "article 12: why", at most a few


@dataclass
class _Unit:
    """All pending outbox rows of one article: sent together, charged together."""

    article_id: int
    rows: list[OutboxEntry]
    doc: SearchDocument | None     # None: remove the article from the index


DEFAULT_MAX_ATTEMPTS = 5
_MAX_REJECTIONS_REPORTED = 5


def to_document(article: Article) -> SearchDocument:
    return SearchDocument(
        id=str(article.id),
        url=article.canonical_url if article.canonical_url.startswith("http") else article.url,
        title=article.title or "",
        text=article.text or "",
        source=article.source or "",
        language=article.language,
        author=article.author,
        published_at=article.published_at or article.fetched_at,
        topics=article.topic_names,
        story_id=str(article.story_id) if article.story_id is not None else None,
        is_duplicate=article.duplicate_of is not None,
        duplicate_of=str(article.duplicate_of) if article.duplicate_of is not None else None,
    )


def outbox_lag(session: Session) -> tuple[int, object]:
    """(pending rows, oldest pending time) — shown by `newsmon status`."""
    return session.execute(select(func.count(OutboxEntry.id), func.min(OutboxEntry.created_at))).one()


def dead_letter_count(session: Session) -> int:
    return session.scalar(select(func.count(IndexDeadLetter.id))) or 0


def dead_letters(session: Session, limit: int = 20) -> list[IndexDeadLetter]:
    return list(session.scalars(select(IndexDeadLetter).order_by(IndexDeadLetter.id).limit(limit)))


def retry_dead_letters(db: Database) -> int:
    """Put every dead letter back in the outbox with a fresh attempt count; returns how many."""
    with db.session() as s:
        dead = list(s.scalars(select(IndexDeadLetter).order_by(IndexDeadLetter.id)))
        for d in dead:
            s.add(OutboxEntry(article_id=d.article_id, op=d.op, created_at=d.queued_at, attempts=0,
                              last_error=f"retried after: {d.error}"[:2000]))
            s.delete(d)
    return len(dead)


def drain_outbox(db: Database, backend: SearchBackend, *, batch_size: int = 500, max_batches: int | None = None,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> DrainResult:
    """Send pending outbox rows to the backend, oldest first, in batches.

    A batch the backend rejects is bisected until the documents it refuses stand alone, so one
    poison document never holds back the others; each refusal counts an attempt, and after
    `max_attempts` the entry moves to the dead letters with its error. `BackendUnavailable`
    stops the drain without charging anyone: an outage is not the documents' fault.
    """
    result = DrainResult()
    last_id = 0  # rows refused in this drain wait for the next one instead of looping here
    while max_batches is None or result.batches < max_batches:
        with db.session() as s:
            query = select(OutboxEntry).where(OutboxEntry.id > last_id).order_by(OutboxEntry.id).limit(batch_size)
            if db.dialect == "postgresql":
                # Several workers drain at once; each takes rows the others are not sending.
                query = query.with_for_update(skip_locked=True)
            rows = s.scalars(query).all()
            if not rows:
                break
            last_id = rows[-1].id
            units = _units(s, rows)
            try:
                refused = _send(backend, units)
            except BackendUnavailable as exc:
                s.rollback()
                _note_outage(db, [r.id for r in rows], str(exc))
                result.error = str(exc)
                break
            refused_ids = {id(u) for u, _ in refused}
            for u in units:
                if id(u) in refused_ids:
                    continue
                for r in u.rows:
                    s.delete(r)
                if u.doc is None:
                    result.deleted += 1
                else:
                    result.sent += 1
            for u, why in refused:
                result.rejected += 1
                if len(result.rejections) < _MAX_REJECTIONS_REPORTED:
                    result.rejections.append(f"article {u.article_id}: {why}"[:300])
                if _charge(s, u, why, max_attempts):
                    result.dead_lettered += 1
            result.batches += 1
    if result.rejected:
        log.warning("search backend refused %d document(s) (%d dead-lettered): %s",
                    result.rejected, result.dead_lettered, "; ".join(result.rejections))
    with db.session() as s:
        result.remaining = outbox_lag(s)[0]
    return result


def _units(s: Session, rows: list[OutboxEntry]) -> list[_Unit]:
    by_article: dict[int, list[OutboxEntry]] = {}
    for r in rows:
        by_article.setdefault(r.article_id, []).append(r)
    upsert_ids = sorted(a for a, rs in by_article.items() if any(r.op == "upsert" for r in rs))
    articles = {a.id: a for a in s.scalars(select(Article).where(Article.id.in_(upsert_ids)))} if upsert_ids else {}
    # An article deleted since it was queued is removed from the index instead.
    return [_Unit(aid, rs, to_document(articles[aid]) if aid in articles else None)
            for aid, rs in sorted(by_article.items())]


def _send(backend: SearchBackend, units: list[_Unit]) -> list[tuple[_Unit, str]]:
    """Send the units; return those the backend refused, each with its error (bisecting)."""
    if not units:
        return []
    try:
        docs = [u.doc for u in units if u.doc is not None]
        gone = [str(u.article_id) for u in units if u.doc is None]
        if docs:
            backend.upsert(docs)
        if gone:
            backend.delete(gone)
        return []
    except BackendUnavailable:
        raise
    except SearchBackendError as exc:
        if len(units) == 1:
            return [(units[0], _one_line(exc))]
    half = len(units) // 2
    return _send(backend, units[:half]) + _send(backend, units[half:])


def _charge(s: Session, unit: _Unit, error: str, max_attempts: int) -> bool:
    """Count one refusal against the unit's rows; dead-letter them at the limit. True if dead."""
    attempts = max(r.attempts for r in unit.rows) + 1
    if attempts < max_attempts:
        for r in unit.rows:
            r.attempts = attempts
            r.last_error = error[:2000]
        return False
    s.add(IndexDeadLetter(article_id=unit.article_id, op="upsert" if unit.doc is not None else "delete",
                          queued_at=min(r.created_at for r in unit.rows), attempts=attempts, error=error[:2000]))
    for r in unit.rows:
        s.delete(r)
    return True


def _note_outage(db: Database, row_ids: list[int], error: str) -> None:
    with db.session() as s:
        for row in s.scalars(select(OutboxEntry).where(OutboxEntry.id.in_(row_ids))):
            row.last_error = error[:2000]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def iter_documents(db: Database, chunk: int = 1000) -> Iterator[SearchDocument]:
    """Every stored article as a search document, in id order, a chunk per transaction."""
    last = 0
    while True:
        with db.session() as s:
            articles = s.scalars(select(Article).where(Article.id > last).order_by(Article.id).limit(chunk)).all()
            if not articles:
                return
            docs = [to_document(a) for a in articles]
            last = articles[-1].id
        yield from docs


def reindex(db: Database, backend: SearchBackend, progress: Callable[[int], None] | None = None) -> int:
    """Rebuild the whole index from the database and swap it in; the outbox is then moot."""
    with db.session() as s:
        high_water = s.scalar(select(func.max(OutboxEntry.id))) or 0
    n = backend.reindex(iter_documents(db), progress=progress)
    with db.session() as s:
        # Rows queued before the rebuild started are covered by it; later ones still count.
        s.query(OutboxEntry).filter(OutboxEntry.id <= high_water).delete(synchronize_session=False)
        # The rebuild sent every stored article and the backend took them all: nothing is dead.
        s.query(IndexDeadLetter).delete(synchronize_session=False)
    return n


def article_count(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count(Article.id))) or 0
