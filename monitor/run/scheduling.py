"""Feed scheduling policy: when to poll a feed next, and claiming due feeds across workers.

Policy: the feed's interval, stretched (up to 4x) for feeds that keep not changing; after
failures an exponential backoff, gentler for soft failures (timeouts, 5xx) than for hard ones
(404, unparseable); a server's Retry-After is honoured.

Claims are leases in the database (`claimed_by`, `claimed_until`), so any number of workers on
any number of machines can share one database without fetching a feed twice; a crashed
worker's lease simply runs out.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from monitor.storage.models import Feed, utcnow

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


def holder_is_dead(worker: str | None) -> bool:
    """True when a lease holder ("host:pid") is a process of this host that no longer runs.

    Such a lease is stale at once: waiting for it to run out would make a rerun after a
    crash skip every feed the crashed pass had claimed.
    """
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim_due_feeds(session: Session, worker: str, *, limit: int = 50, now: datetime | None = None,
                    feed_ids: list[int] | None = None, force: bool = False) -> list[int]:
    """Lease up to `limit` due feeds to `worker` and return their ids (commit to publish the claim).

    With `force`, feeds are claimed whether due or not (an explicit `ingest --once` pass), but a
    feed another live worker is fetching right now is still skipped.
    """
    now = now or utcnow()
    query = select(Feed.id, Feed.claimed_by, Feed.claimed_until).where(Feed.enabled.is_(True))
    if not force:
        query = query.where(or_(Feed.next_fetch_at.is_(None), Feed.next_fetch_at <= now))
    if feed_ids is not None:
        query = query.where(Feed.id.in_(feed_ids))
    # Candidates: free, expired, or held by a process of this host (maybe dead, checked below).
    query = query.where(or_(Feed.claimed_until.is_(None), Feed.claimed_until < now,
                            Feed.claimed_by.like(f"{socket.gethostname()}:%")))
    query = query.order_by(Feed.next_fetch_at.asc().nulls_first(), Feed.id).limit(limit)
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed = []
    for fid, holder, until in session.execute(query).all():
        if until is not None and until >= now and not holder_is_dead(holder):
            continue
        # Compare-and-set: on SQLite (no SKIP LOCKED) two workers may select the same row;
        # only the one whose UPDATE still sees the old holder gets it.
        same_holder = Feed.claimed_by.is_(None) if holder is None else Feed.claimed_by == holder
        res = session.execute(
            update(Feed).where(Feed.id == fid, same_holder).values(claimed_by=worker, claimed_until=now + LEASE)
        )
        if res.rowcount == 1:
            claimed.append(fid)
    return claimed
