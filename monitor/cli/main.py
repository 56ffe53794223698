"""The `newsmon` command line: ingest, run, search, extract, feeds, status, index, stories, demo.

Exit codes: 0 success (an ingest pass that ran is a success even if some feeds failed),
1 runtime failure, 2 usage, bad configuration, bad query or database errors.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import date, datetime
from pathlib import Path

import click
from sqlalchemy import func, select

from monitor import __version__
from monitor.app import App
from monitor.config import ConfigError
from monitor.storage.db import DatabaseError

EXIT_USAGE = 2


class CliError(click.ClickException):
    exit_code = EXIT_USAGE


def _json_default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=None, default=_json_default))


def _open_app(feeds: str | None = None) -> App:
    try:
        return App.from_env(feeds)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _guard(fn):
    """Turn configuration and database errors into one clear line and exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise CliError(f"configuration error: {exc}") from None
        except DatabaseError as exc:
            raise CliError(f"database error: {exc}") from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="newsmon")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """newsmon: media monitoring for foreign-policy research.

    Pulls RSS/Atom feeds, fetches and extracts the articles, groups copies and write-ups of one
    story, and indexes everything for search. Configuration comes from the environment
    (NEWSMON_HOME, DATABASE_URL, SEARCH_URL, NEWSMON_ALLOW_HOSTS, NEWSMON_FEEDS) and feeds.yaml.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# -- ingest / run ----------------------------------------------------------------------------


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


@cli.command()
@click.option("--once", is_flag=True, required=True, help="Run one pass over all feeds and exit.")
@click.option("--feeds", "feeds_path", type=click.Path(dir_okay=False), help="feeds.yaml to use (only its feeds are fetched).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Extraction processes (default NEWSMON_WORKERS or 1).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal).")
@_guard
def ingest(once: bool, feeds_path: str | None, workers: int | None, as_json: bool, progress: bool | None) -> None:
    """Fetch every feed once, store new articles and update the search index."""
    from monitor.run.ingest import ingest_pass
    from monitor.run.pipeline import Pipeline

    if feeds_path and not Path(feeds_path).is_file():
        raise CliError(f"--feeds: no such file: {feeds_path}")
    app = _open_app(feeds_path)
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


@cli.command()
@click.option("--feeds", "feeds_path", type=click.Path(exists=True, dir_okay=False), help="feeds.yaml to use.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Extraction processes.")
@click.option("--tick", type=click.IntRange(5, 3600), default=60, show_default=True, help="Seconds between scheduler ticks.")
@_guard
def run(feeds_path: str | None, workers: int | None, tick: int) -> None:
    """Run the scheduler headless until stopped (SIGINT/SIGTERM): fetch due feeds, drain the index outbox, housekeeping."""
    from monitor.run.scheduler import run_scheduler

    app = _open_app(feeds_path)
    try:
        app.feeds_config
        run_scheduler(app, workers=workers or app.settings.workers, tick_seconds=tick)
    finally:
        app.close()


# -- search ----------------------------------------------------------------------------------


def _parse_day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{name}: expected a date like 2025-02-10, got {value!r}") from None


@cli.command()
@click.argument("query", required=False, default="")
@click.option("--topic", "topics", multiple=True, help="Only these topics (repeatable; any of them).")
@click.option("--source", "sources", multiple=True, help="Only these sources/domains (repeatable).")
@click.option("--language", "languages", multiple=True, help="Only these languages (repeatable).")
@click.option("--since", help="From this UTC day (YYYY-MM-DD, inclusive).")
@click.option("--until", help="Up to this UTC day (YYYY-MM-DD, inclusive).")
@click.option("--sort", type=click.Choice(["relevance", "date"]), default="relevance", show_default=True)
@click.option("--collapse", is_flag=True, help="One hit per story, with its article count.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--json", "as_json", is_flag=True, help='Print {"total": N, "hits": [...]}.')
@_guard
def search(query, topics, sources, languages, since, until, sort, collapse, limit, offset, as_json) -> None:
    """Search stored articles. QUERY: words, "phrases", AND/OR/NOT, -exclude, prefix*."""
    from search.query import QuerySyntaxError, SearchQuery

    q = SearchQuery(
        text=query, topics=list(topics), sources=list(sources), languages=list(languages),
        since=_parse_day(since, "--since"), until=_parse_day(until, "--until"), sort=sort,
        collapse_stories=collapse, limit=limit, offset=offset,
    )
    app = _open_app()
    try:
        try:
            results = app.backend.search(q)
        except QuerySyntaxError as exc:
            raise CliError(f"query error: {exc}") from None
        if as_json:
            echo_json({
                "total": results.total,
                "hits": [
                    {
                        "id": h.id, "title": h.title, "url": h.url, "source": h.source,
                        "published": h.published_at.isoformat() if h.published_at else None,
                        "topics": list(h.topics), "snippet": h.snippet,
                        "story_id": h.story_id, "story_size": h.story_size,
                    }
                    for h in results.hits
                ],
            })
            return
        click.echo(f"{results.total} result(s)")
        for h in results.hits:
            day = h.published_at.date().isoformat() if h.published_at else "----------"
            extra = f"  [+{h.story_size - 1} in story]" if collapse and h.story_size and h.story_size > 1 else ""
            click.echo(f"{day}  {h.source:<24.24}  {h.title}{extra}")
            click.echo(f"            {h.url}   topics: {', '.join(h.topics) or '-'}")
    finally:
        app.close()


# -- extract ---------------------------------------------------------------------------------


@cli.command()
@click.argument("file_or_url")
@click.option("--url", "page_url", help="The page's address, when FILE_OR_URL is a file (for links and canonical).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (url, title, text, published, language, author).")
@_guard
def extract(file_or_url: str, page_url: str | None, as_json: bool) -> None:
    """Extract the article text and metadata of one page (a saved file or a URL)."""
    from monitor.stages.extract import ExtractionError, extract_page
    from monitor.net.fetch import FetchError, Fetcher
    from monitor.run.pipeline import fetch_policy

    if file_or_url.startswith(("http://", "https://")):
        settings = _open_app().settings
        with Fetcher(fetch_policy(settings)) as fetcher:
            try:
                res = fetcher.fetch(file_or_url, expect="html")
            except FetchError as exc:
                raise click.ClickException(f"cannot fetch {file_or_url}: {exc}") from None
        content, url = res.content, page_url or res.final_url
    else:
        path = Path(file_or_url)
        if not path.is_file():
            raise CliError(f"no such file: {file_or_url}")
        content = path.read_bytes()
        if path.suffix == ".gz":
            import gzip

            content = gzip.decompress(content)
        url = page_url or path.resolve().as_uri()
    try:
        page = extract_page(content, url)
    except ExtractionError as exc:
        raise click.ClickException(f"{file_or_url}: {exc}") from None
    out = {
        "url": page.canonical_url or url,
        "title": page.title,
        "text": page.text,
        "published": page.published.isoformat() if page.published else None,
        "language": page.language,
        "author": page.author,
    }
    if as_json:
        echo_json(out)
    else:
        click.echo(f"{out['title']}\n{out['url']}  {out['published'] or ''}  {out['author'] or ''}\n\n{out['text']}")


# -- feeds -----------------------------------------------------------------------------------


@cli.group()
def feeds() -> None:
    """List, add, remove, import and export feeds (stored in the database)."""


@feeds.command("list")
@click.option("--json", "as_json", is_flag=True)
@_guard
def feeds_list(as_json: bool) -> None:
    """Show every feed with its state."""
    from monitor.storage.models import Feed

    app = _open_app()
    try:
        with app.db.session() as s:
            rows = s.scalars(select(Feed).order_by(Feed.id)).all()
            data = [_feed_row(f) for f in rows]
    finally:
        app.close()
    if as_json:
        echo_json(data)
        return
    for f in data:
        state = "on " if f["enabled"] else "off"
        click.echo(f"{f['id']:>4} {state} {f['last_status'] or 'new':<12} {f['url']}  {f['name'] or f['title'] or ''}")


def _feed_row(f) -> dict:
    return {
        "id": f.id, "url": f.url, "name": f.name, "title": f.title, "enabled": f.enabled,
        "interval_minutes": f.interval_minutes, "last_status": f.last_status, "last_error": f.last_error,
        "last_fetched_at": f.last_fetched_at, "last_success_at": f.last_success_at,
        "next_fetch_at": f.next_fetch_at, "consecutive_failures": f.consecutive_failures,
        "bozo_error": f.bozo_error,
    }


@feeds.command("add")
@click.argument("url")
@click.option("--name")
@click.option("--interval", type=click.IntRange(1, 10080), default=30, show_default=True, help="Minutes between polls.")
@_guard
def feeds_add(url: str, name: str | None, interval: int) -> None:
    """Add a feed by URL."""
    from monitor.config import FeedConfig
    from monitor.run.pipeline import sync_feeds
    from monitor.stages.urls import InvalidURLError, canonicalize_url

    try:
        canonicalize_url(url)
    except InvalidURLError as exc:
        raise CliError(f"feed URL: {exc}") from None
    app = _open_app()
    try:
        (fid,) = sync_feeds(app.db, [FeedConfig(url=url, name=name, interval_minutes=interval)])
        click.echo(f"feed {fid}: {url}")
    finally:
        app.close()


@feeds.command("remove")
@click.argument("url_or_id")
@_guard
def feeds_remove(url_or_id: str) -> None:
    """Remove a feed (its stored articles stay)."""
    from monitor.storage.models import Feed

    app = _open_app()
    try:
        with app.db.session() as s:
            feed = s.get(Feed, int(url_or_id)) if url_or_id.isdigit() else s.scalar(select(Feed).where(Feed.url == url_or_id))
            if feed is None:
                raise CliError(f"no such feed: {url_or_id}")
            s.delete(feed)
            click.echo(f"removed feed {feed.id}: {feed.url}")
    finally:
        app.close()


@feeds.command("import-opml")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@_guard
def feeds_import(path: str) -> None:
    """Add the feeds listed in an OPML file."""
    from monitor.stages.opml import OpmlError, import_opml
    from monitor.run.pipeline import sync_feeds

    try:
        configs = import_opml(Path(path).read_bytes())
    except OpmlError as exc:
        raise CliError(f"{path}: {exc}") from None
    app = _open_app()
    try:
        ids = sync_feeds(app.db, configs)
        click.echo(f"imported {len(ids)} feed(s)")
    finally:
        app.close()


@feeds.command("export-opml")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="File to write (default stdout).")
@_guard
def feeds_export(output: str | None) -> None:
    """Write all feeds as OPML."""
    from monitor.config import FeedConfig
    from monitor.storage.models import Feed
    from monitor.stages.opml import export_opml

    app = _open_app()
    try:
        with app.db.session() as s:
            configs = [FeedConfig(url=f.url, name=f.name or f.title, interval_minutes=f.interval_minutes)
                       for f in s.scalars(select(Feed).order_by(Feed.id))]
    finally:
        app.close()
    text = export_opml(configs)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text)


# -- status / index --------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@_guard
def status(as_json: bool) -> None:
    """Feed health, article counts and search-index lag."""
    from monitor.storage.outbox import outbox_lag
    from monitor.storage.models import Article, Feed, Story

    app = _open_app()
    try:
        with app.db.session() as s:
            feeds_ = [_feed_row(f) for f in s.scalars(select(Feed).order_by(Feed.id))]
            articles = s.scalar(select(func.count(Article.id))) or 0
            copies = s.scalar(select(func.count(Article.id)).where(Article.duplicate_of.is_not(None))) or 0
            stories = s.scalar(select(func.count(Story.id))) or 0
            pending, oldest = outbox_lag(s)
        try:
            indexed = app.backend.count()
            backend_ok = True
        except Exception as exc:  # status must still print when the backend is down
            indexed, backend_ok = None, f"{exc}"
    finally:
        app.close()
    data = {
        "database": app.settings.database_url.split("@")[-1],
        "search": app.settings.search_url,
        "articles": articles, "near_duplicates": copies, "stories": stories,
        "index": {"documents": indexed, "backend": backend_ok, "outbox_pending": pending, "outbox_oldest": oldest},
        "feeds": feeds_,
    }
    if as_json:
        echo_json(data)
        return
    click.echo(f"articles: {articles} ({copies} near-duplicates) in {stories} stories")
    lag = f"{pending} waiting" + (f" since {oldest:%Y-%m-%d %H:%M} UTC" if oldest else "")
    click.echo(f"search index: {indexed if indexed is not None else 'UNAVAILABLE'} documents, outbox {lag}"
               + ("" if backend_ok is True else f" ({backend_ok})"))
    ok = sum(1 for f in feeds_ if f["last_status"] in ("ok", "not_modified"))
    failing = [f for f in feeds_ if f["consecutive_failures"]]
    click.echo(f"feeds: {len(feeds_)} ({ok} healthy, {len(failing)} failing)")
    for f in failing:
        click.echo(f"  {f['url']}: {f['consecutive_failures']} failure(s), last: {(f['last_error'] or '')[:120]}; "
                   f"next try {f['next_fetch_at']:%Y-%m-%d %H:%M} UTC")


@cli.command()
@click.option("--progress/--no-progress", default=None)
@_guard
def reindex(progress: bool | None) -> None:
    """Rebuild the search index from the database into a fresh index and swap it in."""
    from tqdm import tqdm

    from monitor.storage.outbox import article_count, reindex as do_reindex

    app = _open_app()
    try:
        total = article_count(app.db)
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(total=total, unit="doc", desc="reindex", disable=not show, file=sys.stderr) as bar:
            n = do_reindex(app.db, app.backend, progress=lambda k: bar.update(k))
        click.echo(f"reindexed {n} article(s)")
    finally:
        app.close()


@cli.command("index")
@_guard
def index_cmd() -> None:
    """Send pending articles (the outbox) to the search index now."""
    from monitor.storage.outbox import drain_outbox

    app = _open_app()
    try:
        res = drain_outbox(app.db, app.backend)
        click.echo(f"sent {res.sent}, removed {res.deleted}, waiting {res.remaining}" + (f"; error: {res.error}" if res.error else ""))
        if res.error:
            sys.exit(1)
    finally:
        app.close()


# -- stories ---------------------------------------------------------------------------------


@cli.command()
@click.argument("story_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@_guard
def story(story_id: int, as_json: bool) -> None:
    """Show a story: its articles and why each one is grouped there."""
    from monitor.storage.models import Article, Story

    app = _open_app()
    try:
        with app.db.session() as s:
            st = s.get(Story, story_id)
            if st is None:
                raise CliError(f"no such story: {story_id}")
            members = s.scalars(select(Article).where(Article.story_id == story_id)
                                .order_by(Article.published_at.asc().nulls_last(), Article.id)).all()
            data = {
                "id": st.id, "headline": st.headline, "first_seen": st.first_seen, "last_updated": st.last_updated,
                "article_count": st.article_count, "source_count": st.source_count,
                "articles": [
                    {"id": a.id, "title": a.title, "url": a.canonical_url, "source": a.source,
                     "published": a.published_at, "duplicate_of": a.duplicate_of,
                     "duplicate_score": a.duplicate_score, "duplicate_method": a.duplicate_method,
                     "story_score": a.story_score, "story_method": a.story_method,
                     "why": a.cluster_explanation}
                    for a in members
                ],
            }
    finally:
        app.close()
    if as_json:
        echo_json(data)
        return
    click.echo(f"story {data['id']}: {data['headline']}")
    click.echo(f"{data['article_count']} article(s) from {data['source_count']} source(s); "
               f"first seen {data['first_seen']}, updated {data['last_updated']}")
    for a in data["articles"]:
        if a["duplicate_of"]:
            why = f"copy of {a['duplicate_of']} ({a['duplicate_method']}, {a['duplicate_score'] or 0:.2f})"
        elif a["story_method"] == "new-story":
            why = "started the story"
        else:
            why = f"{a['story_method']} {a['story_score'] or 0:.2f}"
        click.echo(f"  {a['id']:>6}  {a['source']:<22.22} {a['title'][:70]}  <- {why}")


@cli.command()
@click.option("--since", help="Only articles published from this UTC day on.")
@_guard
def recluster(since: str | None) -> None:
    """Recompute duplicates and stories with the current settings."""
    from monitor.clustering.recluster import recluster_articles
    from monitor.clustering.engine import ClusterSettings

    day = _parse_day(since, "--since")
    app = _open_app()
    try:
        settings = ClusterSettings(**app.feeds_config.clustering)
        n = recluster_articles(app.db, since=day, settings=settings, progress=sys.stderr.isatty())
        click.echo(f"reclustered {n} article(s); run `newsmon index` to push the changes to search")
    finally:
        app.close()


@cli.command()
@click.option("--port", type=int, default=0, help="Port for the sample site (default: any free one).")
@click.option("--keep-running/--exit", default=True, help="Keep serving the sample site after ingest.")
def demo(port: int, keep_running: bool) -> None:
    """Serve the bundled sample news site on 127.0.0.1, ingest it into a demo home and search it."""
    from monitor.demo import run_demo

    run_demo(port=port, keep_running=keep_running)


def _register_cluster_command() -> None:
    from monitor.clustering.offline import cluster_command

    cli.add_command(cluster_command, "cluster")


_register_cluster_command()


def main() -> None:
    cli(prog_name="newsmon")


if __name__ == "__main__":
    main()
