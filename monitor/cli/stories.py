"""`newsmon story`, `newsmon recluster`: stories and why their articles are grouped."""

from __future__ import annotations

import json
import sys

import click

from monitor.cli.common import CliError, echo_json, guard, open_app, parse_day


@click.command()
@click.argument("story_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@guard
def story(story_id: int, as_json: bool) -> None:
    """Show a story: its articles and why each one is grouped there."""
    from monitor.storage.queries import story_detail

    app = open_app()
    try:
        with app.db.session() as s:
            data = story_detail(s, story_id)
        if data is None:
            raise CliError(f"no such story: {story_id}")
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


@click.command()
@click.option("--since", help="Only articles published from this UTC day on.")
@guard
def recluster(since: str | None) -> None:
    """Recompute duplicates and stories with the current settings."""
    from monitor.clustering.recluster import recluster_articles
    from monitor.clustering.engine import ClusterSettings

    day = parse_day(since, "--since")
    app = open_app()
    try:
        settings = ClusterSettings(**app.feeds_config.clustering)
        n = recluster_articles(app.db, since=day, settings=settings, progress=sys.stderr.isatty())
        click.echo(f"reclustered {n} article(s); run `newsmon index` to push the changes to search")
    finally:
        app.close()


@click.command("cluster")
@click.argument("input_path", metavar="INPUT.jsonl", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True),
              help="Write decisions here (default: stdout).")
@click.option("--json-stats", is_flag=True, help="Print run statistics as JSON on stderr.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal).")
def cluster(input_path: str, output: str | None, json_stats: bool, progress: bool | None) -> None:
    """Group copies and stories in INPUT.jsonl (lines {"id","url","source","title","text","published"}).

    Writes one line per input article: {"id", "story_id", "duplicate_of"}.
    """
    from monitor.clustering.offline import cluster_jsonl

    if progress is None:
        progress = sys.stderr.isatty()
    stats = cluster_jsonl(input_path, output, progress=progress,
                          report=lambda msg: click.echo(f"{input_path}: {msg}", err=True))
    if json_stats:
        click.echo(json.dumps(stats), err=True)
    else:
        click.echo(f"{stats['articles']} articles, {stats['stories']} stories, {stats['copies']} copies"
                   + (f", {stats['malformed']} malformed lines" if stats["malformed"] else "")
                   + (f", {stats['duplicate_ids']} duplicate ids" if stats["duplicate_ids"] else ""), err=True)
    if not stats["articles"]:
        raise CliError(f"{input_path}: no valid input line (expected JSON objects with id, title and text, one per line)")
