"""The headless scheduler (`newsmon run`): the ingest loop, plus index drain, digests and housekeeping.

- the ingest loop (`Pipeline.serve`, on the main thread) claims due feeds in small batches
  whenever it has room, and asks again as soon as the next feed falls due (at the latest
  every `tick` seconds). It never waits for a "pass" to end: a slow feed only occupies its own
  slot, and several workers on one PostgreSQL share the due feeds through leases;
- drain (a background thread, every 30 s): sends the index outbox to the search backend,
  also while a long batch of feeds is being worked on;
- digests (a background thread, every minute): due daily digests and pending opt-in mails
  (monitor/digest/job.py), so a slow mail server never holds up ingest;
- housekeeping (on the loop's thread, every 6 h): prunes raw HTML and fetch attempts past their
  retention (monitor/storage/retention.py) and releases stale leases.

With `http_address`, /healthz and /metrics are served beside it (monitor/run/http.py); the
tick log marks the loop alive for /healthz ("pass" there means one tick interval of the loop).

SIGTERM and SIGINT stop claiming, finish the feeds already started and give the other leases
back; nothing half-done is lost because every article is its own transaction and a feed's
validators are saved last.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime, timezone

from sqlalchemy import update

from monitor.app import App
from monitor.run import metrics
from monitor.run.feedsync import sync_feeds
from monitor.run.ingest import draining, every_in_thread
from monitor.run.pipeline import IngestSummary, Pipeline
from monitor.run.scheduling import FeedClaims, release_leases
from monitor.storage.models import Feed
from monitor.storage.retention import prune

log = logging.getLogger(__name__)

DRAIN_EVERY = 30.0
DIGEST_EVERY = 60.0
HOUSEKEEPING_EVERY = 6 * 3600.0


def housekeeping(app: App, pipeline: Pipeline) -> None:
    now = datetime.now(timezone.utc)
    pruned = prune(app.db, keep_html_days=app.settings.keep_html_days,
                   keep_attempts_days=app.settings.keep_attempts_days, now=now)
    if pruned.html_cleared or pruned.attempts_deleted:
        log.warning("housekeeping: cleared raw HTML of %d article(s), deleted %d fetch attempt(s)",
                    pruned.html_cleared, pruned.attempts_deleted,
                    extra={"event": "prune", "html_cleared": pruned.html_cleared,
                           "attempts_deleted": pruned.attempts_deleted})
    with app.db.session() as s:
        s.execute(update(Feed).where(Feed.claimed_until < now).values(claimed_by=None, claimed_until=None))
    # Clustering state is not evicted here: the engine evicts by article time as articles arrive
    # (wall-clock eviction would make a live engine differ from one rebuilt from the database).


class _TickLog:
    """One log line per tick interval with what was done since the last one; marks the loop alive."""

    def __init__(self, pipeline: Pipeline, every: float) -> None:
        self.pipeline, self.every = pipeline, every
        self.last = IngestSummary()
        self.started = time.monotonic()

    def __call__(self) -> None:
        s = self.pipeline.summary
        d = {k: v - getattr(self.last, k) for k, v in s.as_dict().items() if isinstance(v, int)}
        if d["feeds_ok"] or d["feeds_failed"] or d["feeds_not_modified"]:
            log.warning("tick: feeds %d ok / %d not modified / %d failed; %d new articles, %d duplicates",
                        d["feeds_ok"], d["feeds_not_modified"], d["feeds_failed"], d["new_articles"], d["duplicates"],
                        extra={"event": "pass", "seconds": round(time.monotonic() - self.started, 3), **d})
        self.last = IngestSummary(**{k: v for k, v in s.as_dict().items() if k != "failed_feeds"})
        s.failed_feeds.clear()  # the loop runs for weeks: do not keep every failure message
        now = time.monotonic()
        metrics.pass_finished(now - self.started, ok=True)
        self.started = now


def run_scheduler(app: App, *, workers: int = 1, tick_seconds: int = 60, stop_event: threading.Event | None = None,
                  on_feed_done=None, http_address: str | None = None) -> None:
    ops = None
    if http_address:
        from monitor.run.http import OpsServer

        # The loop counts as stale after the configured time, and never sooner than three ticks.
        ops = OpsServer(http_address, app.db, stale_after=max(app.settings.stale_pass_seconds, 3 * tick_seconds))
    try:
        pipeline = Pipeline(app.db, app.settings, app.feeds_config, workers=workers)
    except BaseException:
        if ops is not None:
            ops.close()
        raise
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
    from monitor.digest.job import DigestJob

    digests = every_in_thread("digests", DIGEST_EVERY, DigestJob(app), stop)
    log.warning("newsmon scheduler started (up to %d feeds and %d pages at once, %d extraction worker(s))",
                pipeline.feed_threads, pipeline.page_threads, workers)
    started = time.monotonic()
    try:
        with draining(app, DRAIN_EVERY):
            while not stop.is_set():
                try:
                    pipeline.serve(claims, stop=stop, poll=tick_seconds, on_feed_done=on_feed_done)
                except Exception as exc:  # the loop itself failed (e.g. the database went away): start it again
                    metrics.pass_finished(0.0, ok=False, error=str(exc).splitlines()[0] if str(exc) else repr(exc))
                    log.exception("ingest loop failed; restarting it in 5 s")
                    stop.wait(5)
    finally:
        stop.set()
        pipeline.close()
        digests.join(timeout=30)
        if ops is not None:
            ops.close()
        with app.db.session() as s:
            release_leases(s, pipeline.worker_id)
        log.warning("newsmon scheduler stopped after %.0f s", time.monotonic() - started)
