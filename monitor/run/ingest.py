"""One ingest pass as the CLI, the scheduler and the demo run it: claim feeds, run, index."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitor.app import App
from monitor.storage.outbox import DrainResult, drain_outbox
from monitor.run.pipeline import IngestSummary, Pipeline, sync_feeds
from monitor.run.scheduling import claim_due_feeds

log = logging.getLogger(__name__)


@dataclass
class PassResult:
    summary: IngestSummary
    index: DrainResult


def ingest_pass(app: App, pipeline: Pipeline, *, only_config_feeds: bool, due_only: bool) -> PassResult:
    config_ids = sync_feeds(app.db, app.feeds_config.feeds)
    with app.db.session() as s:
        claimed = claim_due_feeds(
            s, pipeline.worker_id, limit=10_000,
            feed_ids=config_ids if only_config_feeds else None, force=not due_only,
        )
    summary = pipeline.run(claimed)
    return PassResult(summary, drain_index(app))


def drain_index(app: App) -> DrainResult:
    try:
        return drain_outbox(app.db, app.backend, max_attempts=app.settings.outbox_max_attempts)
    except Exception as exc:  # the index is derived data: a broken backend must not fail ingest
        log.warning("search index not updated (%s); the outbox keeps the articles", exc)
        return DrainResult(error=str(exc))
