"""Feed scheduling policy: when to poll a feed next, and claiming due feeds across workers.

Policy: the feed's interval (never less than the feed's own `<ttl>`), stretched (up to 4x) for
feeds that keep not changing; after failures an exponential backoff, gentler for soft failures
(timeouts, 5xx) than for hard ones (404, unparseable); a server's Retry-After is honoured.

Claims are leases in the database (`claimed_by`, `claimed_until`), so any number of workers on
any number of machines can share one database without fetching a feed twice. Workers claim
small batches as they have room (`FeedClaims`), renew the leases of the feeds they are still
working on, and a crashed worker's lease simply runs out (at once when it was a process of
this host that no longer exists).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from monitor.storage.db import Database
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
    ttl_minutes: int | None = None,
) -> datetime:
    interval = timedelta(minutes=max(1, interval_minutes, ttl_minutes or 0))
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


def _scope(query, *, now: datetime, force: bool, feed_ids: list[int] | None, fetched_before: datetime | None):
    query = query.where(Feed.enabled.is_(True))
    if not force:
        query = query.where(or_(Feed.next_fetch_at.is_(None), Feed.next_fetch_at <= now))
    if fetched_before is not None:
        # A forced pass fetches each feed once: not again when it (or a sibling) already did.
        query = query.where(or_(Feed.last_fetched_at.is_(None), Feed.last_fetched_at < fetched_before))
    if feed_ids is not None:
        query = query.where(Feed.id.in_(feed_ids))
    return query


def claim_due_feeds(session: Session, worker: str, *, limit: int = 50, now: datetime | None = None,
                    feed_ids: list[int] | None = None, force: bool = False,
                    fetched_before: datetime | None = None, lease: timedelta = LEASE) -> list[int]:
    """Lease up to `limit` due feeds to `worker` and return their ids (commit to publish the claim).

    With `force`, feeds are claimed whether due or not (an explicit `ingest --once` pass), but a
    feed another live worker is fetching right now is still skipped; with `fetched_before`,
    feeds fetched since then are skipped too. Free and expired leases are taken first; leases of
    dead processes of this host are taken over when that leaves room.
    """
    now = now or utcnow()
    scoped = _scope(select(Feed.id, Feed.claimed_by), now=now, force=force, feed_ids=feed_ids, fetched_before=fetched_before)
    order = (Feed.next_fetch_at.asc().nulls_first(), Feed.id)
    free = scoped.where(or_(Feed.claimed_until.is_(None), Feed.claimed_until < now)).order_by(*order).limit(limit)
    if session.bind.dialect.name == "postgresql":
        free = free.with_for_update(skip_locked=True)
    candidates = list(session.execute(free).all())
    if len(candidates) < limit:
        held = select(Feed.claimed_by).where(Feed.claimed_until >= now, Feed.claimed_by.like(f"{socket.gethostname()}:%"),
                                             Feed.claimed_by != worker).distinct()
        dead = [h for h in session.scalars(held).all() if holder_is_dead(h)]
        if dead:
            orphans = scoped.where(Feed.claimed_by.in_(dead)).order_by(*order).limit(limit - len(candidates))
            if session.bind.dialect.name == "postgresql":
                orphans = orphans.with_for_update(skip_locked=True)
            candidates += session.execute(orphans).all()
    claimed = []
    for fid, holder in candidates:
        # Compare-and-set: on SQLite (no SKIP LOCKED) two workers may select the same row;
        # only the one whose UPDATE still sees the old holder gets it.
        same_holder = Feed.claimed_by.is_(None) if holder is None else Feed.claimed_by == holder
        res = session.execute(
            update(Feed).where(Feed.id == fid, same_holder).values(claimed_by=worker, claimed_until=now + lease)
        )
        if res.rowcount == 1:
            claimed.append(fid)
    return claimed


def renew_leases(session: Session, worker: str, feed_ids: list[int], *, lease: timedelta = LEASE) -> int:
    """Extend this worker's leases on feeds it is still working on; returns how many it still holds."""
    if not feed_ids:
        return 0
    res = session.execute(update(Feed).where(Feed.id.in_(feed_ids), Feed.claimed_by == worker)
                          .values(claimed_until=utcnow() + lease))
    return res.rowcount


def release_leases(session: Session, worker: str, feed_ids: list[int] | None = None) -> None:
    """Give back leases (all of this worker's, or the listed feeds') without touching their schedule."""
    query = update(Feed).where(Feed.claimed_by == worker)
    if feed_ids is not None:
        query = query.where(Feed.id.in_(feed_ids))
    session.execute(query.values(claimed_by=None, claimed_until=None))


@dataclass
class FeedClaims:
    """Where a worker gets its feeds: due feeds (the scheduler) or every feed once (`ingest --once`).

    `claim(n)` leases up to n feeds; `renew(ids)` keeps leases alive while the work goes on;
    `next_due()` says how long to wait before asking again when nothing was claimable.
    """

    db: Database
    worker: str
    feed_ids: list[int] | None = None
    force: bool = False
    fetched_before: datetime | None = None
    lease: timedelta = LEASE
    once: bool = False  # a pass that ends when nothing is left to claim

    def claim(self, limit: int) -> list[int]:
        with self.db.session() as s:
            return claim_due_feeds(s, self.worker, limit=limit, feed_ids=self.feed_ids, force=self.force,
                                   fetched_before=self.fetched_before, lease=self.lease)

    def renew(self, feed_ids: list[int]) -> None:
        with self.db.session() as s:
            renew_leases(s, self.worker, feed_ids, lease=self.lease)

    def release(self, feed_ids: list[int] | None = None) -> None:
        with self.db.session() as s:
            release_leases(s, self.worker, feed_ids)

    def remaining(self) -> int:
        """Feeds in scope that are claimable or leased right now (for a progress total)."""
        now = utcnow()
        with self.db.session() as s:
            query = _scope(select(func.count(Feed.id)), now=now, force=self.force, feed_ids=self.feed_ids,
                           fetched_before=self.fetched_before)
            return int(s.scalar(query) or 0)

    def seconds_until_due(self, cap: float) -> float:
        """How long until the next feed in scope falls due (at most `cap`)."""
        query = select(func.min(Feed.next_fetch_at)).where(Feed.enabled.is_(True), Feed.claimed_until.is_(None))
        if self.feed_ids is not None:
            query = query.where(Feed.id.in_(self.feed_ids))
        with self.db.session() as s:
            nxt = s.scalar(query)
        if nxt is None:
            return cap
        return max(0.0, min(cap, (nxt - utcnow()).total_seconds()))
