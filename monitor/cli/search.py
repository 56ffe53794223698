"""`newsmon search`, `newsmon index` and `newsmon reindex`: query and feed the search index."""

from __future__ import annotations

import sys

import click

from monitor.cli.common import CliError, echo_json, guard, open_app, parse_day


@click.command()
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
@guard
def search(query, topics, sources, languages, since, until, sort, collapse, limit, offset, as_json) -> None:
    """Search stored articles. QUERY: words, "phrases", AND/OR/NOT, -exclude, prefix*."""
    from search.query import QuerySyntaxError, SearchQuery

    q = SearchQuery(
        text=query, topics=list(topics), sources=list(sources), languages=list(languages),
        since=parse_day(since, "--since"), until=parse_day(until, "--until"), sort=sort,
        collapse_stories=collapse, limit=limit, offset=offset,
    )
    app = open_app()
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


@click.command()
@click.option("--progress/--no-progress", default=None)
@guard
def reindex(progress: bool | None) -> None:
    """Rebuild the search index from the database into a fresh index and swap it in."""
    from tqdm import tqdm

    from monitor.storage.outbox import article_count, reindex as do_reindex

    app = open_app()
    try:
        total = article_count(app.db)
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(total=total, unit="doc", desc="reindex", disable=not show, file=sys.stderr) as bar:
            # backends report the running total, tqdm wants the increment
            n = do_reindex(app.db, app.backend, progress=lambda done: bar.update(done - bar.n))
        click.echo(f"reindexed {n} article(s)")
    finally:
        app.close()


@click.command("index")
@guard
def index_cmd() -> None:
    """Send pending articles (the outbox) to the search index now."""
    from monitor.storage.outbox import drain_outbox

    app = open_app()
    try:
        res = drain_outbox(app.db, app.backend)
        click.echo(f"sent {res.sent}, removed {res.deleted}, waiting {res.remaining}" + (f"; error: {res.error}" if res.error else ""))
        if res.error:
            sys.exit(1)
    finally:
        app.close()
