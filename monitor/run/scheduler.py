"""The headless scheduler (`newsmon run`): the ingest loop, plus index drain and housekeeping.

- the ingest loop (`Pipeline.serve`, on the main thread) claims due feeds in small batches
  whenever it has room, and asks again as soon as the next feed falls due (at the latest
  every `tick` seconds). It never waits for a "pass" to end: a slow feed only occupies its own
  slot, and several workers on one PostgreSQL share the due feeds through leases;
- drain (a background thread, every 30 s): sends the index outbox to the search backend,
  also while a long batch of feeds is being worked on;
- housekeeping (on the loop's thread, every 6 h): drops old fetch attempts, releases stale
  leases, evicts old clustering state.

SIGTERM and SIGINT stop claiming, finish the feeds already started and give the other leases
back; nothing half-done is lost because every article is its own transaction and a feed's
validators are saved last.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, update

from monitor.app import App
from monitor.run.feedsync import sync_feeds
from monitor.run.ingest import draining
from monitor.run.pipeline import IngestSummary, Pipeline
from monitor.run.scheduling import FeedClaims, release_leases
from monitor.storage.models import Feed, FetchAttempt

log = logging.getLogger(__name__)

ATTEMPT_RETENTION = timedelta(days=30)
DRAIN_EVERY = 30.0
HOUSEKEEPING_EVERY = 6 * 3600.0


def housekeeping(app: App, pipeline: Pipeline) -> None:
    now = datetime.now(timezone.utc)
    with app.db.session() as s:
        s.execute(delete(FetchAttempt).where(FetchAttempt.started_at < now - ATTEMPT_RETENTION))
        s.execute(update(Feed).where(Feed.claimed_until < now).values(claimed_by=None, claimed_until=None))
    window = pipeline.clusterer.settings.window_days
    if window:
        pipeline.clusterer.engine.evict_before(now - timedelta(days=window))


class _TickLog:
    """One log line per tick interval with what was done since the last one."""

    def __init__(self, pipeline: Pipeline, every: float) -> None:
        self.pipeline, self.every = pipeline, every
        self.last = IngestSummary()
        self.feeds = 0

    def __call__(self) -> None:
        s = self.pipeline.summary
        d = {k: v - getattr(self.last, k) for k, v in s.as_dict().items() if isinstance(v, int)}
        if d["feeds_ok"] or d["feeds_failed"] or d["feeds_not_modified"]:
            log.warning("tick: feeds %d ok / %d not modified / %d failed; %d new articles, %d duplicates",
                        d["feeds_ok"], d["feeds_not_modified"], d["feeds_failed"], d["new_articles"], d["duplicates"])
        self.last = IngestSummary(**{k: v for k, v in s.as_dict().items() if k != "failed_feeds"})
        s.failed_feeds.clear()  # the loop runs for weeks: do not keep every failure message


def run_scheduler(app: App, *, workers: int = 1, tick_seconds: int = 60, stop_event: threading.Event | None = None,
                  on_feed_done=None) -> None:
    pipeline = Pipeline(app.db, app.settings, app.feeds_config, workers=workers)
    stop = stop_event or threading.Event()

    def on_signal(signum, _frame) -> None:
        log.warning("signal %s: stopping after the feeds already started", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    sync_feeds(app.db, app.feeds_config.feeds)
    claims = FeedClaims(app.db, pipeline.worker_id)
    pipeline.every(tick_seconds, _TickLog(pipeline, tick_seconds))
    pipeline.every(HOUSEKEEPING_EVERY, lambda: housekeeping(app, pipeline))
    log.warning("newsmon scheduler started (up to %d feeds and %d pages at once, %d extraction worker(s))",
                pipeline.feed_threads, pipeline.page_threads, workers)
    started = time.monotonic()
    try:
        with draining(app, DRAIN_EVERY):
            while not stop.is_set():
                try:
                    pipeline.serve(claims, stop=stop, poll=tick_seconds, on_feed_done=on_feed_done)
                except Exception:  # the loop itself failed (e.g. the database went away): start it again
                    log.exception("ingest loop failed; restarting it in 5 s")
                    stop.wait(5)
    finally:
        pipeline.close()
        with app.db.session() as s:
            release_leases(s, pipeline.worker_id)
        log.warning("newsmon scheduler stopped after %.0f s", time.monotonic() - started)
