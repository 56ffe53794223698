"""Prometheus metrics of a running worker: small functions the pipeline and scheduler call.

Counters and histograms are updated as work happens (fetches, stored articles, passes); the
database-wide figures (outbox lag, dead letters, feeds due and overdue, article, copy and story
counts) are read from the database at scrape time by `DatabaseCollector`, so every worker on one
PostgreSQL reports the same totals. Everything lives in one registry, `REGISTRY`, served by
`monitor.run.http`.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()

FETCHES = Counter("newsmon_fetches", "HTTP fetches of feeds and pages, by kind and outcome.",
                  ["kind", "outcome"], registry=REGISTRY)
FETCH_SECONDS = Histogram("newsmon_fetch_duration_seconds", "Time to fetch one feed or page (answered fetches).",
                          ["kind"], registry=REGISTRY,
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60))
EXTRACTION_FAILURES = Counter("newsmon_extraction_failures", "Pages fetched whose text could not be extracted.",
                              registry=REGISTRY)
ARTICLES_STORED = Counter("newsmon_articles_stored", "Articles saved by this process, by result "
                          "(new, updated, duplicate-url, duplicate-hash).", ["status"], registry=REGISTRY)
PASS_SECONDS = Histogram("newsmon_pass_duration_seconds", "Wall time of one scheduler pass over the due feeds.",
                         registry=REGISTRY, buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
PASSES = Counter("newsmon_passes", "Scheduler passes, by result (ok, failed).", ["result"], registry=REGISTRY)
LAST_PASS = Gauge("newsmon_last_pass_timestamp_seconds", "Unix time the last pass finished (0: none yet).",
                  registry=REGISTRY)
INDEX_REFUSED = Counter("newsmon_index_refused", "Documents the search backend refused (each attempt).",
                        registry=REGISTRY)

# Feeds this much past their next_fetch_at count as overdue (a healthy worker takes them within a tick).
OVERDUE_AFTER = timedelta(minutes=10)


class PassClock:
    """When passes finished, for /healthz (monotonic, so wall-clock jumps do not matter)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.last_finished: float | None = None
        self.last_error: str | None = None

    def age(self) -> float | None:
        return None if self.last_finished is None else time.monotonic() - self.last_finished


CLOCK = PassClock()


def fetch_recorded(kind: str, outcome: str, elapsed_ms: float | None, error_kind: str | None = None) -> None:
    """One fetch attempt (the pipeline's `_record`): count it, time it, count failed extractions."""
    if error_kind == "extraction":
        EXTRACTION_FAILURES.inc()
        outcome = "extraction_error"
    elif outcome == "error" and error_kind:
        outcome = f"error_{error_kind}"
    FETCHES.labels(kind, outcome).inc()
    if elapsed_ms is not None:
        FETCH_SECONDS.labels(kind).observe(elapsed_ms / 1000.0)


def article_saved(status: str) -> None:
    ARTICLES_STORED.labels(status).inc()


def index_refused(n: int) -> None:
    if n:
        INDEX_REFUSED.inc(n)


def pass_finished(seconds: float, *, ok: bool, error: str | None = None) -> None:
    PASS_SECONDS.observe(seconds)
    PASSES.labels("ok" if ok else "failed").inc()
    LAST_PASS.set(time.time())
    CLOCK.last_finished = time.monotonic()
    CLOCK.last_error = error


class DatabaseCollector:
    """Reads the shared figures from the database at each scrape; a failing database gives
    `newsmon_database_up 0` instead of a broken scrape."""

    def __init__(self, db) -> None:
        self.db = db

    def collect(self):
        from monitor.storage.queries import ops_figures

        up = GaugeMetricFamily("newsmon_database_up", "1 when the database answered this scrape.")
        try:
            with self.db.session() as s:
                fig = ops_figures(s, overdue_after=OVERDUE_AFTER)
        except Exception as exc:  # noqa: BLE001 - a scrape must answer whatever the database does
            log.warning("metrics: database unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for name, doc, value in (
            ("newsmon_articles", "Stored articles.", fig.articles),
            ("newsmon_near_duplicates", "Stored articles that are copies of another.", fig.near_duplicates),
            ("newsmon_stories", "Stories.", fig.stories),
            ("newsmon_outbox_pending", "Outbox entries waiting for the search index.", fig.outbox_pending),
            ("newsmon_outbox_lag_seconds", "Age of the oldest outbox entry (0 when empty).", fig.outbox_lag_seconds),
            ("newsmon_index_dead_letters", "Documents the search backend kept refusing.", fig.dead_letters),
            ("newsmon_feeds", "Enabled feeds.", fig.feeds),
            ("newsmon_feeds_due", "Enabled feeds whose next fetch time has come.", fig.feeds_due),
            ("newsmon_feeds_overdue", f"Feeds due for more than {int(OVERDUE_AFTER.total_seconds())} s.",
             fig.feeds_overdue),
            ("newsmon_feeds_failing", "Feeds whose last fetch failed.", fig.feeds_failing),
            ("newsmon_html_kept", "Articles still holding their raw page HTML.", fig.html_kept),
        ):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], value)
            yield g


_collector: DatabaseCollector | None = None


def register_database(db) -> DatabaseCollector:
    """Report this database's figures (replacing a database registered before, as in tests)."""
    global _collector
    if _collector is not None:
        REGISTRY.unregister(_collector)
    _collector = DatabaseCollector(db)
    REGISTRY.register(_collector)
    return _collector
