"""The headless scheduler (`newsmon run`): APScheduler jobs for ticks, index drain, housekeeping.

- tick: claim the feeds that are due (leases in the database, so several workers share the
  work) and run one pipeline pass over them;
- drain: send the index outbox to the search backend;
- housekeeping: prune raw HTML and fetch attempts past their retention (see
  monitor/storage/retention.py), release stale leases, evict old clustering state.

With `http_address`, /healthz and /metrics are served beside it (monitor/run/http.py).

Jobs never overlap themselves (max_instances=1, coalesce). SIGTERM and SIGINT stop the
scheduler after the running job finishes; nothing half-done is lost because every article is
its own transaction and feed validators are saved last.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import update

from monitor.app import App
from monitor.run.ingest import drain_index, ingest_pass
from monitor.run import metrics
from monitor.storage.models import Feed
from monitor.storage.retention import prune
from monitor.run.pipeline import Pipeline

log = logging.getLogger(__name__)

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
    window = pipeline.clusterer.settings.window_days
    if window:
        pipeline.clusterer.engine.evict_before(now - timedelta(days=window))


def run_scheduler(app: App, *, workers: int = 1, tick_seconds: int = 60, stop_event: threading.Event | None = None,
                  http_address: str | None = None) -> None:
    ops = None
    if http_address:
        from monitor.run.http import OpsServer

        # A pass counts as stale after the configured time, and never sooner than three ticks.
        ops = OpsServer(http_address, app.db, stale_after=max(app.settings.stale_pass_seconds, 3 * tick_seconds))
    pipeline = Pipeline(app.db, app.settings, app.feeds_config, workers=workers)
    scheduler = BlockingScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300})

    def tick() -> None:
        started = time.monotonic()
        try:
            result = ingest_pass(app, pipeline, only_config_feeds=False, due_only=True)
        except Exception as exc:
            metrics.pass_finished(time.monotonic() - started, ok=False, error=str(exc).splitlines()[0] if str(exc) else repr(exc))
            raise
        metrics.pass_finished(time.monotonic() - started, ok=True)
        metrics.index_refused(result.index.rejected)
        s = result.summary
        if s.feeds_ok or s.feeds_failed or s.feeds_not_modified:
            log.warning(
                "tick: feeds %d ok / %d not modified / %d failed; %d new articles, %d duplicates",
                s.feeds_ok, s.feeds_not_modified, s.feeds_failed, s.new_articles, s.duplicates,
                extra={"event": "pass", "seconds": round(time.monotonic() - started, 3), **s.as_dict(),
                       "index_sent": result.index.sent, "index_error": result.index.error},
            )

    now = datetime.now(timezone.utc)
    scheduler.add_job(tick, "interval", seconds=tick_seconds, id="tick", next_run_time=now)
    scheduler.add_job(lambda: metrics.index_refused(drain_index(app).rejected), "interval", seconds=30, id="drain")
    scheduler.add_job(lambda: housekeeping(app, pipeline), "interval", hours=6, id="housekeeping",
                      next_run_time=now + timedelta(minutes=1))
    # Digest e-mails (monitor/digest/): due digests and pending opt-in mails, every minute.
    from monitor.digest.job import add_digest_job
    add_digest_job(scheduler, app)

    def stop(signum, _frame) -> None:
        log.warning("signal %s: stopping after the running job", signum)
        scheduler.shutdown(wait=False)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    if stop_event is not None:
        threading.Thread(target=lambda: (stop_event.wait(), scheduler.shutdown(wait=False)), daemon=True).start()
    log.warning("newsmon scheduler started (tick every %ss, %d extraction worker(s))", tick_seconds, workers)
    try:
        scheduler.start()
    finally:
        pipeline.close()
        if ops is not None:
            ops.close()
        with app.db.session() as s:
            s.execute(update(Feed).where(Feed.claimed_by == pipeline.worker_id).values(claimed_by=None, claimed_until=None))
