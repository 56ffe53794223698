"""`newsmon doctor`: check configuration, database, migrations, search backend and SMTP."""

from __future__ import annotations

import sys

import click

from monitor.cli.common import echo_json

_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


@click.command()
@click.option("--feeds", "feeds_path", type=click.Path(dir_okay=False), help="feeds.yaml to check (default NEWSMON_FEEDS).")
@click.option("--json", "as_json", is_flag=True, help='Print {"ok": bool, "checks": [{"name","verdict","detail"}]}.')
def doctor(feeds_path: str | None, as_json: bool) -> None:
    """Check configuration, database, migrations, search backend and SMTP; exit 1 if any check fails.

    Verdicts: ok, WARN (works, but look: e.g. the index lags the database), FAIL, skip (not
    configured, or an earlier check failed). Nothing is changed: the database is not migrated
    and no mail is sent (SMTP is checked with connect + EHLO when NEWSMON_SMTP_URL is set).
    """
    from monitor.run.doctor import run_checks

    report = run_checks(feeds_path)
    if as_json:
        echo_json(report.as_dict())
    else:
        for c in report.checks:
            click.echo(f"[{_MARK[c.verdict]}] {c.name:<13} {c.detail}")
        failed = [c.name for c in report.checks if c.verdict == "fail"]
        click.echo("all checks passed" if not failed else f"{len(failed)} check(s) failed: {', '.join(failed)}")
    if not report.ok:
        sys.exit(1)
