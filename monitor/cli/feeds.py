"""`newsmon feeds …`: list, add, remove, import and export feeds."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli.common import CliError, echo_json, guard, open_app
from monitor.config.feedsfile import FeedDefaults


@click.group()
def feeds() -> None:
    """List, add, remove, import and export feeds (stored in the database)."""


@feeds.command("list")
@click.option("--json", "as_json", is_flag=True)
@guard
def feeds_list(as_json: bool) -> None:
    """Show every feed with its state."""
    from monitor.storage.queries import feed_row, list_feeds

    app = open_app()
    try:
        with app.db.session() as s:
            data = [feed_row(f) for f in list_feeds(s)]
    finally:
        app.close()
    if as_json:
        echo_json(data)
        return
    for f in data:
        state = "on " if f["enabled"] else "off"
        click.echo(f"{f['id']:>4} {state} {f['last_status'] or 'new':<12} {f['url']}  {f['name'] or f['title'] or ''}")


@feeds.command("add")
@click.argument("url")
@click.option("--name")
@click.option("--interval", type=click.IntRange(1, 10080), default=FeedDefaults.interval_minutes, show_default=True, help="Minutes between polls.")
@guard
def feeds_add(url: str, name: str | None, interval: int) -> None:
    """Add a feed by URL (validated as in feeds.yaml; a URL already subscribed in another
    spelling — case, default port, tracking parameters — is recognised and not added twice)."""
    from monitor.config import FeedConfig
    from monitor.config.feedsfile import check_feed_url
    from monitor.run.pipeline import sync_feeds
    from monitor.storage.queries import feed_with_canonical_url
    from monitor.stages.urls import InvalidURLError, canonicalize_url

    try:
        url = check_feed_url(url)
        canonical = canonicalize_url(url)
    except (ValueError, InvalidURLError) as exc:
        raise CliError(f"feed URL: {exc}") from None
    app = open_app()
    try:
        with app.db.session() as s:
            known = feed_with_canonical_url(s, canonical)
        if known is not None:
            click.echo(f"feed {known[0]} already subscribed: {known[1]} (not added again)")
            return
        (fid,) = sync_feeds(app.db, [FeedConfig(url=url, name=name, interval_minutes=interval)])
        click.echo(f"feed {fid}: {url}")
    finally:
        app.close()


@feeds.command("remove")
@click.argument("url_or_id")
@guard
def feeds_remove(url_or_id: str) -> None:
    """Remove a feed (its stored articles stay)."""
    from monitor.storage.queries import find_feed

    app = open_app()
    try:
        with app.db.session() as s:
            feed = find_feed(s, url_or_id)
            if feed is None:
                raise CliError(f"no such feed: {url_or_id}")
            s.delete(feed)
            click.echo(f"removed feed {feed.id}: {feed.url}")
    finally:
        app.close()


@feeds.command("import-opml")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@guard
def feeds_import(path: str) -> None:
    """Add the feeds listed in an OPML file."""
    from monitor.stages.opml import OpmlError, import_opml
    from monitor.run.pipeline import sync_feeds

    try:
        configs = import_opml(Path(path).read_bytes())
    except OpmlError as exc:
        raise CliError(f"{path}: {exc}") from None
    app = open_app()
    try:
        ids = sync_feeds(app.db, configs)
        click.echo(f"imported {len(ids)} feed(s)")
    finally:
        app.close()


@feeds.command("export-opml")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="File to write (default stdout).")
@guard
def feeds_export(output: str | None) -> None:
    """Write all feeds as OPML."""
    from monitor.config import FeedConfig
    from monitor.stages.opml import export_opml
    from monitor.storage.queries import list_feeds

    app = open_app()
    try:
        with app.db.session() as s:
            configs = [FeedConfig(url=f.url, name=f.name or f.title, interval_minutes=f.interval_minutes)
                       for f in list_feeds(s)]
    finally:
        app.close()
    text = export_opml(configs)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text)
