"""`newsmon prune`: clear raw page HTML and fetch attempts past their retention."""

from __future__ import annotations

import click

from monitor.cli.common import echo_json, guard, open_app


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what would be cleared; change nothing.")
@click.option("--html-days", type=click.IntRange(0, 36500), default=None,
              help="Keep raw page HTML this many days (default NEWSMON_KEEP_HTML_DAYS, 30).")
@click.option("--attempts-days", type=click.IntRange(1, 36500), default=None,
              help="Keep fetch-attempt rows this many days (default NEWSMON_KEEP_ATTEMPTS_DAYS, 30).")
@click.option("--json", "as_json", is_flag=True)
@guard
def prune(dry_run: bool, html_days: int | None, attempts_days: int | None, as_json: bool) -> None:
    """Clear raw page HTML and old fetch attempts past their retention.

    Only these go: articles keep their text, metadata, stories and index entries. `newsmon run`
    does the same in its housekeeping every six hours.
    """
    from monitor.storage.retention import prune as do_prune

    app = open_app()
    try:
        res = do_prune(app.db, keep_html_days=app.settings.keep_html_days if html_days is None else html_days,
                       keep_attempts_days=app.settings.keep_attempts_days if attempts_days is None else attempts_days,
                       dry_run=dry_run)
    finally:
        app.close()
    if as_json:
        echo_json(res.__dict__)
        return
    verb = "would clear" if dry_run else "cleared"
    click.echo(f"{verb} raw HTML of {res.html_cleared} article(s) stored before {res.html_cutoff:%Y-%m-%d %H:%M} UTC; "
               f"{'would delete' if dry_run else 'deleted'} {res.attempts_deleted} fetch attempt(s) "
               f"before {res.attempts_cutoff:%Y-%m-%d %H:%M} UTC")
