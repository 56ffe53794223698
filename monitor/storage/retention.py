"""Retention: raw page HTML and fetch-attempt rows are kept for a number of days, then cleared.

Only these two go: an article's HTML is set to NULL (its text, metadata, story and index entry
stay), and fetch attempts older than their retention are deleted. `newsmon prune` runs it by
hand (with --dry-run to count first); the scheduler's housekeeping runs it every few hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, select, update

from monitor.storage.db import Database
from monitor.storage.models import Article, FetchAttempt

CHUNK = 2000  # rows per transaction: a big first prune must not hold a long write lock


@dataclass
class PruneResult:
    html_cleared: int
    attempts_deleted: int
    html_cutoff: datetime
    attempts_cutoff: datetime
    dry_run: bool


def prune(db: Database, *, keep_html_days: int, keep_attempts_days: int, dry_run: bool = False,
          now: datetime | None = None) -> PruneResult:
    now = now or datetime.now(timezone.utc)
    html_cutoff = now - timedelta(days=keep_html_days)
    attempts_cutoff = now - timedelta(days=keep_attempts_days)
    # updated_at moves whenever the stored page (and so its HTML) is replaced by a newer fetch.
    old_html = (Article.html.is_not(None), Article.updated_at < html_cutoff)
    old_attempts = FetchAttempt.started_at < attempts_cutoff
    if dry_run:
        with db.session() as s:
            html = s.scalar(select(func.count(Article.id)).where(*old_html)) or 0
            attempts = s.scalar(select(func.count(FetchAttempt.id)).where(old_attempts)) or 0
        return PruneResult(html, attempts, html_cutoff, attempts_cutoff, True)
    html = attempts = 0
    while True:
        with db.session() as s:
            ids = s.scalars(select(Article.id).where(*old_html).order_by(Article.id).limit(CHUNK)).all()
            if not ids:
                break
            s.execute(update(Article).where(Article.id.in_(ids)).values(html=None)
                      .execution_options(synchronize_session=False))
            html += len(ids)
    while True:
        with db.session() as s:
            ids = s.scalars(select(FetchAttempt.id).where(old_attempts).order_by(FetchAttempt.id).limit(CHUNK)).all()
            if not ids:
                break
            s.execute(delete(FetchAttempt).where(FetchAttempt.id.in_(ids)).execution_options(synchronize_session=False))
            attempts += len(ids)
    return PruneResult(html, attempts, html_cutoff, attempts_cutoff, False)
