"""Several `newsmon run` workers, killed workers and extraction processes, and faulty feeds.

Real processes against a local farm of generated feeds (tests/feedfarm.py, loopback addresses only),
each run bounded in time. Every case compares the final database with a clean single run of
the same farm: the same articles (canonical URL, title, text hash, where the text came from),
none twice.

The multi-worker cases need PostgreSQL (several processes writing at once is what it is for);
without DATABASE_URL=postgresql://… they are skipped saying so. `.ci/run` runs the suite a
second time with DATABASE_URL set to the local PostgreSQL, so they run there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from monitor.net.policy import FetchPolicy
from monitor.storage.db import Database
from monitor.storage.models import Article, Feed
from tests.dbfixtures import ON_POSTGRES, app_environment, temporary_database
from tests.feedfarm import FeedFarm

pg_only = pytest.mark.skipif(not ON_POSTGRES, reason="several workers share work through PostgreSQL: set DATABASE_URL=postgresql://… (.ci/run does)")

FEEDS, ITEMS = 200, 2
DEADLINE = 240.0  # seconds any one run may take before the test fails (not a speed goal)


@pytest.fixture(scope="module")
def farm():
    farm = FeedFarm(FEEDS, ITEMS)
    yield farm
    farm.close()


@pytest.fixture(scope="module")
def clean_articles(farm, tmp_path_factory):
    """What one plain `newsmon ingest --once` stores from the farm, in a database of its own."""
    tmp = tmp_path_factory.mktemp("clean")
    with temporary_database(tmp) as url:
        env = _env(tmp, url)
        feeds = _feeds_file(tmp, farm)
        done = subprocess.run([sys.executable, "-m", "monitor.cli", "ingest", "--once", "--no-progress", "--feeds", str(feeds)],
                              env=env, capture_output=True, text=True, timeout=DEADLINE)
        assert done.returncode == 0, done.stderr[-2000:]
        return _articles(url)


def _env(tmp: Path, url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, **app_environment(tmp, url), "NEWSMON_HOST_CONCURRENCY": "8", **extra}


def _feeds_file(tmp: Path, farm: FeedFarm, interval: int = 60, feeds: list[int] | None = None) -> Path:
    path = tmp / "feeds.yaml"
    ids = range(farm.n_feeds) if feeds is None else feeds
    path.write_text(f"defaults: {{interval_minutes: {interval}}}\nfeeds:\n" + "".join(f"  - url: {farm.feed_url(i)}\n" for i in ids))
    return path


def _articles(url: str) -> set[tuple]:
    db = Database(url)
    try:
        with db.session() as s:
            rows = s.execute(select(Article.canonical_url, Article.title, Article.content_hash, Article.text_source)).all()
            assert s.scalar(select(func.count(func.distinct(Article.canonical_url)))) == len(rows)
            assert s.scalar(select(func.count(Article.id)).where(Article.story_id.is_(None))) == 0
        return {tuple(r) for r in rows}
    finally:
        db.close()


def _start_worker(tmp: Path, url: str, feeds: Path, name: str, workers: int = 1, **extra: str) -> subprocess.Popen:
    env = _env(tmp, url, NEWSMON_USER_AGENT=f"newsmon-test/{name}", **extra)
    log = open(tmp / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "--feeds", str(feeds), "--tick", "5", "--workers", str(workers)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_until(check, what: str, timeout: float = DEADLINE, procs: list[subprocess.Popen] = ()) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        for p in procs:
            assert p.poll() is None, f"a worker exited early with {p.returncode}"
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _feeds_finished(url: str) -> int:
    db = Database(url)
    try:
        with db.session() as s:
            return s.scalar(select(func.count(Feed.id)).where(Feed.last_fetched_at.is_not(None), Feed.claimed_by.is_(None))) or 0
    finally:
        db.close()


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            assert p.wait(timeout=90) == 0
        except subprocess.TimeoutExpired:
            p.kill()
            raise


@pg_only
@pytest.mark.parametrize("n", [2, 3])
def test_workers_share_the_feeds_and_store_each_article_once(n, farm, clean_articles, database_url, tmp_path):
    feeds = _feeds_file(tmp_path, farm)
    mark = len(farm.hits)
    procs = [_start_worker(tmp_path, database_url, feeds, f"w{k}") for k in range(n)]
    try:
        _wait_until(lambda: _feeds_finished(database_url) == FEEDS, "every feed to be fetched", procs=procs)
    finally:
        _stop(procs)
    hits = [h for h in farm.hits[mark:] if h.path.startswith("/f/")]
    per_feed: dict[str, int] = {}
    for h in hits:
        per_feed[h.path] = per_feed.get(h.path, 0) + 1
    assert len(per_feed) == FEEDS, "every feed fetched"
    assert max(per_feed.values()) == 1, "no feed fetched twice in one round"
    by_worker = {f"newsmon-test/w{k}": 0 for k in range(n)}
    for h in hits:
        by_worker[h.agent] += 1
    assert min(by_worker.values()) >= FEEDS / (4 * n), f"work is spread over the workers: {by_worker}"
    assert _articles(database_url) == clean_articles


def test_a_killed_worker_leaves_its_feeds_to_the_others(farm, clean_articles, database_url, tmp_path):
    feeds = _feeds_file(tmp_path, farm)
    procs = [_start_worker(tmp_path, database_url, feeds, f"k{k}") for k in range(2)]
    try:
        _wait_until(lambda: _feeds_finished(database_url) >= 20, "some feeds to be done", procs=procs)
        procs[0].send_signal(signal.SIGKILL)  # mid-pass: it holds leases on feeds it was working on
        procs[0].wait(timeout=30)
        _wait_until(lambda: _feeds_finished(database_url) == FEEDS, "the survivor to finish every feed", procs=procs[1:])
    finally:
        _stop(procs[1:])
    assert _articles(database_url) == clean_articles


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                kids = []
            out += kids
            todo += kids
    return out


def _extraction_children(pid: int) -> list[int]:
    kids = []
    for k in _descendants(pid):
        try:
            cmd = Path(f"/proc/{k}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmd and b"forkserver" not in cmd and not _descendants(k):
            kids.append(k)
    return kids


def test_a_killed_extraction_process_is_replaced_and_its_pages_retried(farm, clean_articles, database_url, tmp_path):
    feeds = _feeds_file(tmp_path, farm)
    proc = _start_worker(tmp_path, database_url, feeds, "x", workers=2)
    try:
        killed = 0
        end = time.monotonic() + DEADLINE
        while killed < 2 and time.monotonic() < end:  # kill a child twice, some time apart
            kids = _extraction_children(proc.pid)
            if kids and _feeds_finished(database_url) >= 30 * (killed + 1):
                os.kill(kids[0], signal.SIGKILL)
                killed += 1
            assert proc.poll() is None
            time.sleep(0.2)
        assert killed == 2
        _wait_until(lambda: _feeds_finished(database_url) == FEEDS, "every feed to be done after the kills", procs=[proc])
    finally:
        _stop([proc])
    log = (tmp_path / "x.log").read_text()
    assert "an extraction process died; starting a new pool" in log
    # Same articles as a clean run, all with the page's own text: the pages were retried, not dropped.
    assert _articles(database_url) == clean_articles


def test_faulty_feeds_do_not_hold_up_healthy_ones(database_url, tmp_path):
    """30 % of the feeds hang, trickle, fail, loop or stream forever; with a one-minute interval
    every healthy feed is fetched at once and again within its interval plus a margin."""
    # As in the field, the faulty feeds are other sites (hosts of their own), and the per-host
    # limit is the default one: a hanging request holds a slot of its own host only.
    faulty_hosts = ("127.0.0.9", "127.0.0.10", "127.0.0.11")
    farm = FeedFarm(100, 2, faulty=0.3, faulty_hosts=faulty_hosts)
    try:
        assert {urlsplit(farm.feed_url(i)).hostname for i in farm.healthy} == {"127.0.0.1"}
        assert {urlsplit(farm.feed_url(i)).hostname for i in farm.faults} == set(faulty_hosts)
        feeds = _feeds_file(tmp_path, farm, interval=1)
        started = time.monotonic()
        proc = _start_worker(tmp_path, database_url, feeds, "f", workers=1,
                             NEWSMON_HOST_CONCURRENCY=str(FetchPolicy().per_host_concurrency),
                             NEWSMON_ALLOW_HOSTS=",".join(("127.0.0.1", *faulty_hosts)))
        margin = 45.0  # claim polling and a loaded machine; far below the 130+ s a pass-long stall costs
        try:
            _wait_until(lambda: all(len(farm.feed_hits(i)) >= 2 for i in farm.healthy), "a second round of the healthy feeds",
                        timeout=120 + 4 * margin, procs=[proc])
        finally:
            _stop([proc])
        # The round starts with the worker's first request (process start-up on a loaded machine
        # is not the loop's doing); every healthy feed must follow within the margin.
        round_start = min(h.arrived for i in range(farm.n_feeds) for h in farm.feed_hits(i)[:1])
        assert round_start - started < 120, "the worker never started fetching"
        late = []
        for i in farm.healthy:
            first, second = farm.feed_hits(i)[:2]
            if first.arrived - round_start > margin or second.arrived - first.arrived > 60 + margin:
                late.append((i, round(first.arrived - round_start, 1), round(second.arrived - first.arrived, 1)))
            assert second.arrived - first.arrived >= 59, "not fetched again before its interval"
        assert not late, f"healthy feeds off schedule (feed, first fetch after s, gap s): {late}"
        assert set(farm.faults.values()) == {"hang", "trickle", "error", "garbage", "loop", "endless"}
        stored = {a[0] for a in _articles(database_url)}
        assert farm.expected_pages() <= stored
    finally:
        farm.close()
