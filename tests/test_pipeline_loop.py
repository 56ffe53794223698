"""The ingest loop's parts: publication order within a bounded wait, batch claims and leases,
TTL as a floor, and failures that stay local (one feed, one article, one extraction process)."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

import monitor.run.pipeline as pipeline
from monitor.cli import cli
from monitor.run.order import PublicationOrder
from monitor.run.scheduling import LEASE, FeedClaims, claim_due_feeds, next_fetch_time, renew_leases
from monitor.storage.db import Database
from monitor.storage.models import Article, Feed, FetchAttempt

T0 = datetime(2026, 11, 28, 12, tzinfo=timezone.utc)
EXPECTED = json.loads((Path(__file__).parent / "data" / "site" / "expected.json").read_text())
CLEAN_ROWS = len({i.get("canonical") or i["id"] for i in EXPECTED["items"]}) - 1
FEED_FILES = ("natowatch.rss", "ukraineaid.atom", "foreignpolicy.xml")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- publication order ----------------------------------------------------------------------


def test_articles_go_oldest_first_once_every_feed_of_the_batch_is_parsed():
    order: PublicationOrder[str] = PublicationOrder(hold=10, clock=Clock())
    c = order.open_cohort(["a", "b"])
    order.ready(c, T0 + timedelta(hours=2), "u2", "late")
    order.feed_parsed(c, "a")
    assert list(order.release()) == []  # b's entries may be older
    order.ready(c, T0, "u1", "early")
    order.feed_parsed(c, "b")
    assert list(order.release()) == ["early", "late"]


def test_a_feed_that_does_not_answer_stops_holding_the_others_after_the_hold():
    clock = Clock()
    order: PublicationOrder[str] = PublicationOrder(hold=10, clock=clock)
    c = order.open_cohort(["fast", "hanging"])
    order.feed_parsed(c, "fast")
    order.ready(c, T0, "u", "article")
    clock.now = 9.9
    assert list(order.release()) == []
    clock.now = 10.1
    assert list(order.release()) == ["article"]


def test_a_page_in_flight_holds_later_articles_only_for_the_hold():
    clock = Clock()
    order: PublicationOrder[str] = PublicationOrder(hold=10, clock=clock)
    c = order.open_cohort(["f"])
    order.feed_parsed(c, "f")
    order.started(1, T0)
    order.ready(c, T0 + timedelta(minutes=1), "u2", "later")
    assert list(order.release()) == []
    clock.now = 11
    assert list(order.release()) == ["later"]
    order.done(1)
    order.ready(c, T0, "u1", "slow one")
    assert list(order.release()) == ["slow one"]


def test_a_later_batch_does_not_hold_an_earlier_one():
    order: PublicationOrder[str] = PublicationOrder(hold=10, clock=Clock())
    first = order.open_cohort(["a"])
    order.open_cohort(["b"])  # claimed later, not parsed yet
    order.feed_parsed(first, "a")
    order.ready(first, T0, "u", "from a")
    assert list(order.release()) == ["from a"]


# -- scheduling and claims ------------------------------------------------------------------


def test_a_feeds_ttl_is_a_floor_on_its_interval():
    base = dict(failures=0, soft=False, retry_after=None, unchanged_streak=0)
    assert next_fetch_time(T0, 30, **base, ttl_minutes=120) - T0 == timedelta(minutes=120)
    assert next_fetch_time(T0, 30, **base, ttl_minutes=5) - T0 == timedelta(minutes=30)


def _feeds(db, n: int, **kw) -> list[int]:
    with db.session() as s:
        rows = [Feed(url=f"https://feeds.example/{i}-{os.urandom(3).hex()}.xml", next_fetch_at=T0 - timedelta(minutes=n - i), **kw)
                for i in range(n)]
        s.add_all(rows)
        s.flush()
        return [f.id for f in rows]


def test_claims_come_in_small_batches(db):
    ids = _feeds(db, 7)
    claims = FeedClaims(db, "w1")
    got = [claims.claim(3), claims.claim(3), claims.claim(3), claims.claim(3)]
    assert [len(g) for g in got] == [3, 3, 1, 0]
    assert sorted(sum(got, [])) == sorted(ids)


def test_feeds_held_by_a_live_sibling_do_not_hide_free_ones(db):
    live = f"{socket.gethostname()}:{os.getpid()}"
    held = _feeds(db, 5, claimed_by=live, claimed_until=datetime.now(timezone.utc) + LEASE)
    free = _feeds(db, 3)
    with db.session() as s:
        assert sorted(claim_due_feeds(s, "w2", limit=3)) == sorted(free)
    assert held


def test_a_forced_pass_skips_feeds_fetched_since_it_began(db):
    ids = _feeds(db, 3)
    with db.session() as s:
        s.get(Feed, ids[0]).last_fetched_at = T0 + timedelta(minutes=5)
        s.get(Feed, ids[1]).last_fetched_at = T0 - timedelta(minutes=5)
    with db.session() as s:
        assert sorted(claim_due_feeds(s, "w", force=True, fetched_before=T0)) == sorted(ids[1:])


def test_leases_are_renewed_only_by_their_holder(db):
    ids = _feeds(db, 2)
    with db.session() as s:
        claim_due_feeds(s, "w1", lease=timedelta(seconds=1))
    with db.session() as s:
        assert renew_leases(s, "w2", ids) == 0
        assert renew_leases(s, "w1", ids) == 2
    with db.session() as s:
        until = s.get(Feed, ids[0]).claimed_until
    assert until > datetime.now(timezone.utc) + LEASE - timedelta(minutes=1)


# -- failures stay local ---------------------------------------------------------------------


def _ingest(feeds_file: Path, *extra: str) -> dict:
    result = CliRunner().invoke(cli, ["ingest", "--once", "--feeds", str(feeds_file), "--json", "--no-progress", *extra],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def _feeds_file(tmp_path: Path, base: str) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + "".join(f"  - url: {base}/{n}\n" for n in FEED_FILES))
    return path


def _count(env) -> int:
    db = Database(env["DATABASE_URL"])
    try:
        with db.session() as s:
            return s.scalar(select(func.count(Article.id)))
    finally:
        db.close()


def test_an_exception_in_one_feed_is_recorded_and_the_next_pass_works(site_server, newsmon_env, tmp_path, monkeypatch):
    feeds = _feeds_file(tmp_path, site_server.base)
    real = pipeline.parse_feed

    def broken_for_one(content, *, url, headers=None):
        if url.endswith("ukraineaid.atom"):
            raise KeyError("a bug in parsing")
        return real(content, url=url, headers=headers)

    monkeypatch.setattr(pipeline, "parse_feed", broken_for_one)
    first = _ingest(feeds)
    assert first["feeds_ok"] == 2 and first["feeds_failed"] == 1 and first["new_articles"] > 0
    db = Database(newsmon_env["DATABASE_URL"])
    with db.session() as s:
        bad = s.scalar(select(Feed).where(Feed.url.like("%ukraineaid.atom")))
        assert bad.last_status == "error" and "KeyError" in bad.last_error and bad.etag is None
    db.close()
    monkeypatch.setattr(pipeline, "parse_feed", real)
    second = _ingest(feeds)
    assert second["feeds_failed"] == 0
    assert _count(newsmon_env) == CLEAN_ROWS


def test_an_article_that_cannot_be_stored_is_recorded_and_retried_next_pass(site_server, newsmon_env, tmp_path, monkeypatch):
    feeds = _feeds_file(tmp_path, site_server.base)
    real = pipeline.save_articles
    victim: list[str] = []

    def fails_once(session, cands, clusterer=None):
        # The victim fails in its batch and again when the batch is retried article by article;
        # the others of its batch are stored on the retry.
        if not victim:
            victim.append(cands[0].canonical_url)
        if len(victim) == 1 and any(c.canonical_url == victim[0] for c in cands):
            real(session, cands, clusterer)  # the engine decides them, then the transaction fails
            raise RuntimeError("disk full, say")
        return real(session, cands, clusterer)

    monkeypatch.setattr(pipeline, "save_articles", fails_once)
    first = _ingest(feeds)
    assert first["feeds_failed"] == 1 and first["new_articles"] == CLEAN_ROWS - 1
    db = Database(newsmon_env["DATABASE_URL"])
    with db.session() as s:
        attempt = s.scalar(select(FetchAttempt).where(FetchAttempt.error_kind == "store"))
        assert attempt is not None and "disk full" in attempt.error
        failed = s.scalar(select(Feed).where(Feed.last_status == "error"))
        assert "could not store" in failed.last_error and failed.etag is None  # validators not saved: seen again
    db.close()
    victim.append("done")
    _ingest(feeds)
    assert _count(newsmon_env) == CLEAN_ROWS


POISON = "hunter-in-beijing"


def _dies_on_poison(content, url, find_date, title, settings):
    if POISON in url:
        os._exit(1)  # what the OOM killer or a segfault in lxml leaves behind
    return REAL_EXTRACT(content, url, find_date, title, settings)


REAL_EXTRACT = pipeline._extract_in_worker


def test_a_page_that_kills_its_extraction_process_twice_is_recorded_and_the_rest_goes_on(site_server, newsmon_env, tmp_path,
                                                                                        monkeypatch):
    assert any(POISON in i["link"] for i in EXPECTED["items"])
    monkeypatch.setattr(pipeline, "_extract_in_worker", _dies_on_poison)  # forked extraction children inherit it
    summary = _ingest(_feeds_file(tmp_path, site_server.base), "--workers", "2")
    assert summary["feeds_failed"] == 0 and summary["new_articles"] == CLEAN_ROWS
    db = Database(newsmon_env["DATABASE_URL"])
    with db.session() as s:
        died = s.scalars(select(FetchAttempt).where(FetchAttempt.error.like("%died twice%"))).all()
        assert [a.url for a in died if POISON in a.url], "the poison page is recorded as failed"
        poison = s.scalar(select(Article).where(Article.url.like(f"%{POISON}%")))
        assert poison is not None and poison.text_source != "page"  # stored from the feed's own text
    db.close()
    # The replaced pool works: the next pass extracts normally.
    monkeypatch.setattr(pipeline, "_extract_in_worker", REAL_EXTRACT)
    again = _ingest(_feeds_file(tmp_path, site_server.base), "--workers", "2")
    assert again["feeds_failed"] == 0


def _spins_on_poison(content, url, find_date, title, settings):
    if POISON in url:
        Path(os.environ["NEWSMON_TEST_SPIN_PID_FILE"]).write_text(str(os.getpid()))
        while True:  # from outside, what a page that makes lxml spin looks like: no answer, ever
            time.sleep(1)
    return REAL_EXTRACT(content, url, find_date, title, settings)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie is dead, only not reaped yet


def test_an_extraction_past_its_deadline_is_recorded_its_process_killed_and_the_rest_goes_on(site_server, newsmon_env, tmp_path,
                                                                                              monkeypatch):
    pid_file = tmp_path / "spin.pid"
    monkeypatch.setattr(pipeline, "_extract_in_worker", _spins_on_poison)  # forked extraction children inherit it
    monkeypatch.setenv("NEWSMON_TEST_SPIN_PID_FILE", str(pid_file))
    monkeypatch.setenv("NEWSMON_EXTRACT_TIMEOUT", "2")
    summary = _ingest(_feeds_file(tmp_path, site_server.base), "--workers", "2")
    assert summary["feeds_failed"] == 0 and summary["new_articles"] == CLEAN_ROWS
    stuck = int(pid_file.read_text())
    assert not _alive(stuck), "the stuck extraction process was killed"
    db = Database(newsmon_env["DATABASE_URL"])
    try:
        with db.session() as s:
            timed_out = s.scalars(select(FetchAttempt).where(FetchAttempt.error.like("%timed out after 2 s%"))).all()
            assert timed_out and all(POISON in a.url for a in timed_out), [a.url for a in timed_out]
            assert all(a.error_kind == "extraction" for a in timed_out)
            poison = s.scalars(select(Article).where(Article.url.like(f"%{POISON}%"))).all()
            assert poison and all(a.text_source != "page" for a in poison)  # stored from the feed's own text
            # Every other page was extracted, the ones in flight in the killed pool on their retry.
            others = s.scalars(select(Article).where(Article.url.not_like(f"%{POISON}%"))).all()
            assert len(others) == CLEAN_ROWS - len(poison)
            # Pages the site does not serve (404) are stored from the feed, as in any run.
            not_from_page = [a.url for a in others if a.text_source != "page"]
            assert all(any(u.split("?")[0].endswith(m) for m in EXPECTED["missing"]) for u in not_from_page), not_from_page
            assert not s.scalars(select(FetchAttempt).where(FetchAttempt.error.like("%died twice%"))).all()
    finally:
        db.close()


def test_a_background_job_that_raises_runs_again_at_its_next_turn():
    import threading

    from monitor.run.ingest import every_in_thread

    calls: list[int] = []
    done = threading.Event()
    stop = threading.Event()

    def job() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("mail server away")
        done.set()

    thread = every_in_thread("test-job", 0.05, job, stop)
    try:
        assert done.wait(5), "the job was not run again after raising"
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive() and len(calls) >= 2
