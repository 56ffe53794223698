"""`newsmon ingest --once` and `newsmon run`: one pass, or the scheduler until stopped."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from monitor.cli.common import CliError, echo_json, guard, open_app


def _progress_bar(enabled: bool):
    from tqdm import tqdm

    bar = tqdm(total=0, unit="feed", desc="feeds", disable=not enabled, file=sys.stderr, leave=False)

    def progress(what: str, n: int) -> None:
        if what == "total":
            bar.total = n
            bar.refresh()
        else:
            bar.update(n)

    return bar, progress


LOG_FORMAT = click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True, envvar="NEWSMON_LOG_FORMAT",
    help="Log lines as text, or one JSON object per line for log collectors (env NEWSMON_LOG_FORMAT).")


@click.command()
@click.option("--once", is_flag=True, required=True, help="Run one pass over all feeds and exit.")
@click.option("--feeds", "feeds_path", type=click.Path(dir_okay=False), help="feeds.yaml to use (only its feeds are fetched).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Extraction processes (default NEWSMON_WORKERS or 1).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal).")
@LOG_FORMAT
@guard
def ingest(once: bool, feeds_path: str | None, workers: int | None, as_json: bool, progress: bool | None,
           log_format: str) -> None:
    """Fetch every feed once, store new articles and update the search index."""
    from monitor.run.ingest import ingest_pass
    from monitor.run.logs import configure
    from monitor.run.pipeline import Pipeline

    configure(log_format)

    if feeds_path and not Path(feeds_path).is_file():
        raise CliError(f"--feeds: no such file: {feeds_path}")
    app = open_app(feeds_path)
    try:
        app.feeds_config  # validate before touching the database
        show = sys.stderr.isatty() if progress is None else progress
        bar, report = _progress_bar(show and not as_json or bool(progress))
        pipeline = Pipeline(app.db, app.settings, app.feeds_config, workers=workers or 1, progress=report)
        try:
            result = ingest_pass(app, pipeline, only_config_feeds=bool(feeds_path), due_only=False)
        finally:
            pipeline.close()
            bar.close()
        s = result.summary
        if as_json:
            echo_json({**s.as_dict(), "index": result.index.__dict__})
        else:
            click.echo(
                f"feeds: {s.feeds_ok} ok, {s.feeds_not_modified} not modified, {s.feeds_failed} failed | "
                f"entries: {s.entries} ({s.entries_known} already known) | new articles: {s.new_articles}, "
                f"updated: {s.updated_articles}, duplicates: {s.duplicates} | pages failed: {s.pages_failed}, "
                f"feed-text fallbacks: {s.fallbacks}"
            )
            for line in s.failed_feeds:
                click.echo(f"  failed: {line}", err=True)
            idx = result.index
            click.echo(f"index: {idx.sent} sent" + (f", NOT updated: {idx.error} ({idx.remaining} waiting)" if idx.error else ""))
    finally:
        app.close()


@click.command()
@click.option("--feeds", "feeds_path", type=click.Path(exists=True, dir_okay=False), help="feeds.yaml to use.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Extraction processes.")
@click.option("--tick", type=click.IntRange(5, 3600), default=60, show_default=True, help="Seconds between scheduler ticks.")
@click.option("--http", "http_address", metavar="HOST:PORT", envvar="NEWSMON_HTTP", default=None,
              help="Serve /healthz and /metrics (Prometheus) here, e.g. 127.0.0.1:9464 (env NEWSMON_HTTP; off by default).")
@LOG_FORMAT
@guard
def run(feeds_path: str | None, workers: int | None, tick: int, http_address: str | None, log_format: str) -> None:
    """Run the scheduler headless until stopped (SIGINT/SIGTERM): fetch due feeds, drain the index outbox, housekeeping.

    /healthz answers 200 while the database answers and a pass finished recently (NEWSMON_STALE_PASS_SECONDS,
    default 900, at least three ticks), 503 with the reasons otherwise.
    """
    from monitor.run.logs import configure
    from monitor.run.scheduler import run_scheduler

    configure(log_format)
    if http_address:
        from monitor.run.http import parse_address

        parse_address(http_address)  # a bad address fails before any work starts
    app = open_app(feeds_path)
    try:
        app.feeds_config
        run_scheduler(app, workers=workers or app.settings.workers, tick_seconds=tick, http_address=http_address)
    finally:
        app.close()
