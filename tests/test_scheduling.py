"""Polling policy and feed claims shared by several workers."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from monitor.storage.models import Feed
from monitor.run.scheduling import LEASE, MAX_BACKOFF, MAX_SOFT_BACKOFF, claim_due_feeds, next_fetch_time

NOW = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)


def nxt(**kw) -> timedelta:
    args = dict(failures=0, soft=False, retry_after=None, unchanged_streak=0) | kw
    return next_fetch_time(NOW, kw.pop("interval", 30), **{k: v for k, v in args.items() if k != "interval"}) - NOW


def test_healthy_feed_is_polled_at_its_interval():
    assert nxt() == timedelta(minutes=30)


def test_feeds_that_rarely_change_are_polled_less_often_but_capped():
    assert nxt(unchanged_streak=4) > nxt(unchanged_streak=0)
    assert nxt(unchanged_streak=1000) == timedelta(minutes=120)


def test_hard_failures_back_off_exponentially_up_to_a_cap():
    delays = [nxt(failures=n) for n in range(1, 8)]
    assert delays == sorted(delays) and delays[0] < delays[2]
    assert nxt(failures=50) == MAX_BACKOFF


def test_soft_failures_back_off_less_than_hard_ones():
    for n in range(1, 6):
        assert nxt(failures=n, soft=True) <= nxt(failures=n)
    assert nxt(failures=50, soft=True) == MAX_SOFT_BACKOFF


def test_retry_after_is_honoured():
    assert nxt(failures=1, soft=True, retry_after=7200) == timedelta(hours=2)


def _feeds(db, n: int, due: bool = True) -> list[int]:
    with db.session() as s:
        feeds = [Feed(url=f"https://feeds.example/{i}.xml", next_fetch_at=NOW - timedelta(minutes=1) if due else NOW + timedelta(hours=1))
                 for i in range(n)]
        s.add_all(feeds)
        s.flush()
        return [f.id for f in feeds]


def test_only_due_feeds_are_claimed_and_a_claim_is_exclusive(db):
    due = _feeds(db, 3)
    with db.session() as s:
        s.add(Feed(url="https://feeds.example/later.xml", next_fetch_at=NOW + timedelta(hours=1)))
    with db.session() as s:
        assert sorted(claim_due_feeds(s, "w1", now=NOW)) == sorted(due)
    with db.session() as s:
        assert claim_due_feeds(s, "w2", now=NOW) == []  # leased to w1
    with db.session() as s:
        assert sorted(claim_due_feeds(s, "w2", now=NOW + LEASE + timedelta(seconds=1))) == sorted(due)  # lease ran out


def test_forced_pass_claims_feeds_that_are_not_due(db):
    ids = _feeds(db, 2, due=False)
    with db.session() as s:
        assert claim_due_feeds(s, "w1", now=NOW) == []
    with db.session() as s:
        assert sorted(claim_due_feeds(s, "w1", now=NOW, force=True)) == sorted(ids)


def test_concurrent_workers_never_claim_the_same_feed(db):
    ids = _feeds(db, 40)
    claimed: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        got = []
        for _ in range(10):
            with db.session() as s:
                got += claim_due_feeds(s, name, limit=3, now=NOW)
        claimed[name] = got

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_claims = [fid for got in claimed.values() for fid in got]
    assert len(all_claims) == len(set(all_claims)) == len(ids)
    with db.session() as s:
        owners = {f.id: f.claimed_by for f in s.scalars(select(Feed))}
    for name, got in claimed.items():
        assert all(owners[fid] == name for fid in got)


def test_a_lease_held_by_a_dead_process_on_this_host_is_taken_over(db):
    import socket
    import subprocess
    import sys

    ids = _feeds(db, 2)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_worker = f"{socket.gethostname()}:{dead.stdout.strip()}"
    with db.session() as s:
        assert sorted(claim_due_feeds(s, dead_worker, now=NOW)) == sorted(ids)
    with db.session() as s:
        assert sorted(claim_due_feeds(s, "w-new", now=NOW)) == sorted(ids)


def test_a_lease_held_by_a_live_process_is_respected(db):
    import os
    import socket

    ids = _feeds(db, 1)
    with db.session() as s:
        claim_due_feeds(s, f"{socket.gethostname()}:{os.getpid()}", now=NOW)
    with db.session() as s:
        assert claim_due_feeds(s, "w-new", now=NOW, force=True) == []
    assert ids
