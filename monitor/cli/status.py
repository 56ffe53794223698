"""`newsmon status`: feed health, counts and index lag."""

from __future__ import annotations

import sys

import click

from monitor.cli.common import EXIT_RUNTIME, RuntimeFailure, echo_json, guard, one_line, open_app


@click.command()
@click.option("--json", "as_json", is_flag=True)
@guard
def status(as_json: bool) -> None:
    """Feed health, article counts and search-index lag."""
    from monitor.storage.outbox import dead_letter_count, dead_letters, outbox_lag
    from monitor.config import ConfigError
    from monitor.storage.queries import corpus_counts, feed_row, list_feeds
    from search.backend import SearchBackendError

    app = open_app()
    try:
        with app.db.session() as s:
            feeds_ = [feed_row(f) for f in list_feeds(s)]
            counts = corpus_counts(s)
            articles, copies, stories = counts["articles"], counts["near_duplicates"], counts["stories"]
            pending, oldest = outbox_lag(s)
            from monitor.digest.status import digest_status
            digest = digest_status(s)
            dead_total = dead_letter_count(s)
            dead = [{"article_id": d.article_id, "op": d.op, "attempts": d.attempts, "error": d.error,
                     "queued_at": d.queued_at, "dead_at": d.dead_at} for d in dead_letters(s)]
        try:
            indexed = app.backend.count()
            backend_ok = True
        except (SearchBackendError, ConfigError) as exc:  # status must still print when the backend is down
            indexed, backend_ok = None, one_line(exc)
    finally:
        app.close()
    data = {
        "database": app.settings.database_url.split("@")[-1],
        "search": app.settings.search_url,
        "articles": articles, "near_duplicates": copies, "stories": stories,
        "index": {"documents": indexed, "backend": backend_ok, "outbox_pending": pending, "outbox_oldest": oldest,
                  "dead_letters": dead_total, "dead": dead},
        "feeds": feeds_,
        "digest": digest.as_dict(),
    }
    if as_json:
        echo_json(data)
        if backend_ok is not True:
            sys.exit(EXIT_RUNTIME)
        return
    click.echo(f"articles: {articles} ({copies} near-duplicates) in {stories} stories")
    lag = f"{pending} waiting" + (f" since {oldest:%Y-%m-%d %H:%M} UTC" if oldest else "")
    click.echo(f"search index: {indexed if indexed is not None else 'UNAVAILABLE'} documents, outbox {lag}"
               + ("" if backend_ok is True else f" ({backend_ok})"))
    if dead_total:
        click.echo(f"dead letters: {dead_total} document(s) the search backend kept refusing "
                   f"(retry with `newsmon index --retry-dead`)")
        for d in dead:
            click.echo(f"  article {d['article_id']} ({d['op']}, {d['attempts']} attempts): {d['error'][:160]}")
    ok = sum(1 for f in feeds_ if f["last_status"] in ("ok", "not_modified"))
    failing = [f for f in feeds_ if f["consecutive_failures"]]
    click.echo(f"feeds: {len(feeds_)} ({ok} healthy, {len(failing)} failing)")
    for line in digest.lines():
        click.echo(line)
    for f in failing:
        click.echo(f"  {f['url']}: {f['consecutive_failures']} failure(s), last: {(f['last_error'] or '')[:120]}; "
                   f"next try {f['next_fetch_at']:%Y-%m-%d %H:%M} UTC")
    if backend_ok is not True:
        raise RuntimeFailure(f"search backend unavailable: {backend_ok}")
