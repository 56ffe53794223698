"""One ingest pass as the CLI and the demo run it: claim feeds in batches, run, keep the index fed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from monitor.app import App
from monitor.run import metrics
from monitor.run.feedsync import sync_feeds
from monitor.run.pipeline import IngestSummary, Pipeline
from monitor.run.scheduling import FeedClaims
from monitor.storage.models import utcnow
from monitor.storage.outbox import DrainResult, drain_outbox

log = logging.getLogger(__name__)

DRAIN_EVERY = 15.0  # seconds between index drains while a pass runs


@dataclass
class PassResult:
    summary: IngestSummary
    index: DrainResult


def ingest_pass(app: App, pipeline: Pipeline, *, only_config_feeds: bool, due_only: bool) -> PassResult:
    """Fetch every feed in scope once (or only the due ones), sharing the work with any other
    worker on the same database: each feed is claimed in small batches, so two concurrent passes
    split the feeds instead of both fetching all of them."""
    config_ids = sync_feeds(app.db, app.feeds_config.feeds)
    claims = FeedClaims(
        app.db, pipeline.worker_id, feed_ids=config_ids if only_config_feeds else None,
        force=not due_only, fetched_before=None if due_only else utcnow(), once=True,
    )
    pipeline.progress("total", claims.remaining())
    with draining(app, DRAIN_EVERY):
        summary = pipeline.serve(claims, stop=threading.Event())
    return PassResult(summary, drain_index(app))


def every_in_thread(name: str, seconds: float, job: Callable[[], None], stop: threading.Event, *,
                    at_once: bool = True) -> threading.Thread:
    """Run `job` every `seconds` on a daemon thread until `stop` is set (first run now, or after
    one interval); a failing run is logged and the next one happens at its turn."""

    def loop() -> None:
        if not at_once and stop.wait(seconds):
            return
        while not stop.is_set():
            try:
                job()
            except Exception:
                log.exception("%s failed; trying again in %.0f s", name, seconds)
            stop.wait(seconds)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


@contextmanager
def draining(app: App, every: float) -> Iterator[None]:
    """Send the index outbox to the search backend every `every` seconds while the block runs."""
    stop = threading.Event()

    def drain() -> None:
        metrics.index_refused(drain_index(app).rejected)

    thread = every_in_thread("index-drain", every, drain, stop, at_once=False)
    try:
        yield
    finally:
        stop.set()
        thread.join()
        # One last drain on the way out, so what was stored since the last turn is not left waiting.
        drain()


def drain_index(app: App) -> DrainResult:
    try:
        return drain_outbox(app.db, app.backend, max_attempts=app.settings.outbox_max_attempts)
    except Exception as exc:  # the index is derived data: a broken backend must not fail ingest
        log.warning("search index not updated (%s); the outbox keeps the articles", exc)
        return DrainResult(error=str(exc))
