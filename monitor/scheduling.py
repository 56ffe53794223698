"""Feed scheduling policy: when to poll a feed next, and claiming due feeds across workers.

Policy: the feed's interval, stretched (up to 4x) for feeds that keep not changing; after
failures an exponential backoff, gentler for soft failures (timeouts, 5xx) than for hard ones
(404, unparseable); a server's Retry-After is honoured.

Claims are leases in the database (`claimed_by`, `claimed_until`), so any number of workers on
any number of machines can share one database without fetching a feed twice; a crashed
worker's lease simply runs out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from monitor.models import Feed, utcnow

MAX_BACKOFF = timedelta(hours=24)
MAX_SOFT_BACKOFF = timedelta(hours=6)
LEASE = timedelta(minutes=15)


def next_fetch_time(
    now: datetime,
    interval_minutes: int,
    *,
    failures: int,
    soft: bool,
    retry_after: float | None,
    unchanged_streak: int,
) -> datetime:
    interval = timedelta(minutes=max(1, interval_minutes))
    if failures <= 0:
        stretch = min(1.0 + 0.25 * unchanged_streak, 4.0)
        delay = interval * stretch
    elif soft:
        delay = min(timedelta(minutes=5) * (2 ** min(failures - 1, 16)), MAX_SOFT_BACKOFF)
        delay = max(delay, min(interval, MAX_SOFT_BACKOFF))
    else:
        delay = min(interval * (2 ** min(failures, 16)), MAX_BACKOFF)
    if retry_after:
        delay = max(delay, timedelta(seconds=retry_after))
    return now + delay


def claim_due_feeds(session: Session, worker: str, *, limit: int = 50, now: datetime | None = None,
                    feed_ids: list[int] | None = None, force: bool = False) -> list[int]:
    """Lease up to `limit` due feeds to `worker` and return their ids (commit to publish the claim).

    With `force`, feeds are claimed whether due or not (an explicit `ingest --once` pass), but a
    feed another worker is fetching right now is still skipped.
    """
    now = now or utcnow()
    free = or_(Feed.claimed_until.is_(None), Feed.claimed_until < now)
    query = select(Feed.id).where(Feed.enabled.is_(True), free)
    if not force:
        query = query.where(or_(Feed.next_fetch_at.is_(None), Feed.next_fetch_at <= now))
    if feed_ids is not None:
        query = query.where(Feed.id.in_(feed_ids))
    query = query.order_by(Feed.next_fetch_at.asc().nulls_first(), Feed.id).limit(limit)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed = []
    for fid in session.scalars(query).all():
        # Compare-and-set: on SQLite (no SKIP LOCKED) two workers may select the same row;
        # only the one whose UPDATE still sees it free gets it.
        res = session.execute(
            update(Feed).where(Feed.id == fid, free).values(claimed_by=worker, claimed_until=now + LEASE)
        )
        if res.rowcount == 1:
            claimed.append(fid)
    return claimed


def release_claims(session: Session, worker: str) -> None:
    session.execute(update(Feed).where(Feed.claimed_by == worker).values(claimed_by=None, claimed_until=None))
