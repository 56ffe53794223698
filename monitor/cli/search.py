"""`newsmon search`, `newsmon index` and `newsmon reindex`: query and feed the search index."""

from __future__ import annotations

import sys

import click

from monitor.cli.common import CliError, RuntimeFailure, echo_json, guard, one_line, open_app, parse_day


MAX_OFFSET = 1_000_000  # deeper pages are a scraping loop, not a reader: narrow the query instead


class _SearchCommand(click.Command):
    """Points at `--` when a query word that starts with '-' was taken for an option."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        original = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            word = next((a for a in original if a.startswith(exc.option_name) and not a.startswith("--")), None)
            if word is not None:
                rest = " ".join(a for a in original if a != "--")
                exc.message = (f"no such option: {word}. A query word that starts with '-' goes after `--`: "
                               f"newsmon search -- {rest}")
            raise


@click.command(cls=_SearchCommand)
@click.argument("query", nargs=-1)
@click.option("--topic", "topics", multiple=True, help="Only these topics (repeatable; any of them).")
@click.option("--source", "sources", multiple=True, help="Only these sources/domains (repeatable).")
@click.option("--language", "languages", multiple=True, help="Only these languages (repeatable).")
@click.option("--since", help="From this UTC day (YYYY-MM-DD, inclusive).")
@click.option("--until", help="Up to this UTC day (YYYY-MM-DD, inclusive).")
@click.option("--sort", type=click.Choice(["relevance", "date"]), default="relevance", show_default=True)
@click.option("--collapse", is_flag=True, help="One hit per story, with its article count.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0, MAX_OFFSET), default=0, help="Skip this many hits (paging).")
@click.option("--json", "as_json", is_flag=True, help='Print {"total": N, "hits": [...]}.')
@guard
def search(query, topics, sources, languages, since, until, sort, collapse, limit, offset, as_json) -> None:
    """Search stored articles. QUERY: words, "phrases", AND/OR/NOT, -exclude, prefix*.

    Several words need no quotes (`newsmon search NATO summit`). Put the query after `--` when a
    word starts with '-' (an exclusion), so it is not read as an option: `newsmon search -- NATO -Trump`.
    """
    from search.query import QuerySyntaxError, SearchQuery

    query = " ".join(query)
    since_day, until_day = parse_day(since, "--since"), parse_day(until, "--until")
    if since_day and until_day and since_day > until_day:
        raise CliError(f"--since {since_day} is after --until {until_day}: nothing can match")
    q = SearchQuery(
        text=query, topics=list(topics), sources=list(sources), languages=list(languages),
        since=since_day, until=until_day, sort=sort,
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
            n = do_reindex(app.db, app.backend, progress=lambda k: bar.update(k))
        click.echo(f"reindexed {n} article(s)")
    finally:
        app.close()


@click.command("index")
@click.option("--retry-dead", is_flag=True, help="Put the dead letters (documents the backend kept refusing) back in the outbox first.")
@click.option("--json", "as_json", is_flag=True, help="Print the drain result as JSON.")
@guard
def index_cmd(retry_dead: bool, as_json: bool) -> None:
    """Send pending articles (the outbox) to the search index now.

    Exit 1 when the backend is down (nothing is lost: the outbox keeps the articles) or when it
    refused documents; `newsmon status` lists dead letters with their errors.
    """
    from monitor.storage.outbox import drain_outbox, retry_dead_letters

    app = open_app()
    try:
        retried = retry_dead_letters(app.db) if retry_dead else 0
        backend = app.backend
        res = drain_outbox(app.db, backend, max_attempts=app.settings.outbox_max_attempts)
    finally:
        app.close()
    if as_json:
        echo_json({"retried": retried, **res.__dict__})
    else:
        if retry_dead:
            click.echo(f"retried {retried} dead letter(s)")
        click.echo(f"sent {res.sent}, removed {res.deleted}, waiting {res.remaining}"
                   + (f", refused {res.rejected} ({res.dead_lettered} dead-lettered)" if res.rejected else ""))
        for line in res.rejections:
            click.echo(f"  refused: {line}", err=True)
    if res.error:
        raise RuntimeFailure(f"search backend unavailable: {one_line(res.error)} ({res.remaining} waiting in the outbox)")
    if res.rejected:
        sys.exit(1)
