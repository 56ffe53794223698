"""Index sync: drains the outbox into the search backend, and rebuilds the index from the database.

The outbox row is deleted only after the backend has confirmed the batch (for Meilisearch: the
task succeeded). When the backend is down the rows stay, the pipeline keeps storing, and the
next drain sends everything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.storage.db import Database
from monitor.storage.models import Article, OutboxEntry
from search.documents import SearchDocument
from search.backend import SearchBackend, SearchBackendError

log = logging.getLogger(__name__)


@dataclass
class DrainResult:
    sent: int = 0
    deleted: int = 0
    batches: int = 0
    error: str | None = None
    remaining: int = 0


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


def drain_outbox(db: Database, backend: SearchBackend, *, batch_size: int = 500, max_batches: int | None = None) -> DrainResult:
    result = DrainResult()
    while max_batches is None or result.batches < max_batches:
        with db.session() as s:
            query = select(OutboxEntry).order_by(OutboxEntry.id).limit(batch_size)
            if db.dialect == "postgresql":
                # Several workers drain at once; each takes rows the others are not sending.
                query = query.with_for_update(skip_locked=True)
            rows = s.scalars(query).all()
            if not rows:
                break
            ids_upsert = sorted({r.article_id for r in rows if r.op == "upsert"})
            ids_delete = sorted({r.article_id for r in rows if r.op == "delete"} - set(ids_upsert))
            articles = s.scalars(select(Article).where(Article.id.in_(ids_upsert))).all() if ids_upsert else []
            # An article deleted since it was queued is removed from the index instead.
            gone = set(ids_upsert) - {a.id for a in articles}
            docs = [to_document(a) for a in articles]
            try:
                if docs:
                    backend.upsert(docs)
                if ids_delete or gone:
                    backend.delete([str(i) for i in sorted(set(ids_delete) | gone)])
            except SearchBackendError as exc:
                s.rollback()
                _note_failure(db, [r.id for r in rows], str(exc))
                result.error = str(exc)
                break
            for r in rows:
                s.delete(r)
            result.sent += len(docs)
            result.deleted += len(ids_delete) + len(gone)
            result.batches += 1
    with db.session() as s:
        result.remaining = outbox_lag(s)[0]
    return result


def _note_failure(db: Database, row_ids: list[int], error: str) -> None:
    with db.session() as s:
        for row in s.scalars(select(OutboxEntry).where(OutboxEntry.id.in_(row_ids))):
            row.attempts += 1
            row.last_error = error[:2000]


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
    return n


def article_count(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count(Article.id))) or 0
