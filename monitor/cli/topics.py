"""`newsmon topics` (list, test) and `newsmon retag`: check topic rules and apply them to stored articles."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from monitor.cli.common import CliError, echo_json, guard, open_app, parse_day

_FEEDS_HELP = "Topic rules from this feeds.yaml instead of the configured one (to try edits)."


@dataclass
class _Doc:
    """One article to test: where it came from, its title and body text."""

    source: str
    title: str
    text: str


@click.group()
def topics() -> None:
    """Topic rules: list them, and test what an article would be tagged and why."""


@topics.command("list")
@click.option("--feeds", "feeds_path", type=click.Path(dir_okay=False), help=_FEEDS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
@guard
def list_topics(feeds_path: str | None, as_json: bool) -> None:
    """The configured topics: name, label and what they match on."""
    rules = _rules(feeds_path)
    if as_json:
        from dataclasses import asdict

        echo_json([asdict(r) for r in rules])
        return
    for r in rules:
        terms = ", ".join((r.include_terms + r.include_phrases)[:8])
        click.echo(f"{r.name:<24} {r.label:<24} min_score {r.min_score:g}; {terms}")


@topics.command("test")
@click.argument("file_or_url")
@click.option("--feeds", "feeds_path", type=click.Path(dir_okay=False), help=_FEEDS_HELP)
@click.option("--title", help="The headline, when FILE_OR_URL is plain text without one.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per article.")
@guard
def test_cmd(file_or_url: str, feeds_path: str | None, title: str | None, as_json: bool) -> None:
    """Show which topics an article would get, with each rule's score and reasons.

    FILE_OR_URL is a web page (http(s) URL or saved .html: extracted as the pipeline does), a
    JSON/JSONL file of {"title", "text"} items (each one tested), or a text file (first line is
    the headline unless --title is given). `-` reads text from standard input.
    """
    from monitor.stages.topics import TopicTagger

    rules = _rules(feeds_path)
    tagger = TopicTagger(rules)
    for doc in _load_docs(file_or_url, title):
        matches = tagger.explain(doc.title, doc.text)
        if as_json:
            echo_json({"source": doc.source, "title": doc.title,
                       "topics": [m.name for m in matches if m.assigned],
                       "matches": [m.to_dict() for m in matches]})
            continue
        got = [m.name for m in matches if m.assigned]
        click.echo(f"{doc.source}: {doc.title or '(no title)'}")
        click.echo(f"  topics: {', '.join(got) or 'none'}")
        for m in matches:
            mark = "+" if m.assigned else "-"
            click.echo(f"  {mark} {m.name:<22} {m.reason()}")


@click.command()
@click.option("--since", help="Only articles published (or, without a date, fetched) from this UTC day.")
@click.option("--batch-size", type=click.IntRange(1, 10000), default=200, show_default=True)
@click.option("--restart", is_flag=True, help="Start over even if a run with these rules finished or stopped.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@guard
def retag(since: str | None, batch_size: int, restart: bool, progress: bool | None, as_json: bool) -> None:
    """Apply the current topic rules to stored articles and queue changed ones for the index.

    Resumable: a killed run continues from its checkpoint when started again with the same rules
    and --since. Safe beside a running ingest: short transactions, and an article re-saved by the
    ingest meanwhile keeps the ingest's tags. Run `newsmon index` (or let the scheduler drain the
    outbox) to update the search index.
    """
    from tqdm import tqdm

    from monitor.run.retag import retag as do_retag

    day = parse_day(since, "--since")
    app = open_app()
    try:
        rules = app.feeds_config.topics
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(unit="article", desc="retag", disable=not show, file=sys.stderr) as bar:
            def set_total(n: int) -> None:
                bar.total = n
                bar.refresh()

            res = do_retag(app.db, rules, since=day, batch_size=batch_size, restart=restart,
                           progress=bar.update, total_hint=set_total)
        if as_json:
            echo_json(res.to_dict())
        elif res.already_done:
            click.echo("already done: these rules were applied to every article (use --restart to run again)")
        else:
            resumed = f" (resumed after article {res.resumed_from})" if res.resumed_from else ""
            click.echo(f"retagged {res.processed} article(s){resumed}: {res.changed} changed, "
                       f"{res.skipped_newer} left to a newer ingest decision; changes are queued for the index")
    finally:
        app.close()


def _rules(feeds_path: str | None):
    from monitor.config import load_feeds_config

    if feeds_path:
        return load_feeds_config(feeds_path).topics
    app = open_app()
    try:
        return app.feeds_config.topics
    finally:
        app.close()


def _load_docs(file_or_url: str, title: str | None) -> list[_Doc]:
    if file_or_url.startswith(("http://", "https://")):
        return [_from_url(file_or_url)]
    if file_or_url == "-":
        return [_from_text("<stdin>", sys.stdin.read(), title)]
    path = Path(file_or_url)
    if not path.is_file():
        raise CliError(f"no such file: {file_or_url}")
    raw = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm", ".gz") or raw.lstrip()[:1] == b"<":
        if suffix == ".gz":
            import gzip

            raw = gzip.decompress(raw)
        return [_from_html(raw, path.resolve().as_uri(), str(path))]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if suffix in (".json", ".jsonl"):
        return _from_json(str(path), text)
    return [_from_text(str(path), text, title)]


def _from_url(url: str) -> _Doc:
    from monitor.net.fetch import FetchError, Fetcher
    from monitor.net.policy import fetch_policy

    app = open_app()
    try:
        settings = app.settings
    finally:
        app.close()
    with Fetcher(fetch_policy(settings)) as fetcher:
        try:
            res = fetcher.fetch(url, expect="html")
        except FetchError as exc:
            raise click.ClickException(f"cannot fetch {url}: {exc}") from None
    return _from_html(res.content, res.final_url, url)


def _from_html(content: bytes, url: str, source: str) -> _Doc:
    from monitor.stages.extract import ExtractionError, extract_page

    try:
        page = extract_page(content, url)
    except ExtractionError as exc:
        raise click.ClickException(f"{source}: {exc}") from None
    return _Doc(source, page.title or "", page.text)


def _from_text(source: str, text: str, title: str | None) -> _Doc:
    if title is not None:
        return _Doc(source, title, text)
    head, _, body = text.strip().partition("\n")
    return _Doc(source, head.strip(), body.strip())


def _from_json(source: str, text: str) -> list[_Doc]:
    stripped = text.strip()
    if not stripped:
        raise CliError(f"{source}: empty file")
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CliError(f"{source}: invalid JSON: {exc.msg} (line {exc.lineno})") from None
        pairs = list(enumerate(items, 1))
    else:
        pairs = []
        for n, line in enumerate(stripped.splitlines(), 1):
            if not line.strip():
                continue
            try:
                pairs.append((n, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise CliError(f"{source}:{n}: invalid JSON: {exc.msg}") from None
    docs = []
    for n, item in pairs:
        if not isinstance(item, dict) or not isinstance(item.get("title", ""), str) \
                or not isinstance(item.get("text", ""), str) or not (item.get("title") or item.get("text")):
            raise CliError(f"{source}:{n}: expected an object with a \"title\" and/or \"text\" string")
        label = f"{source}:{n}" + (f" ({item['id']})" if isinstance(item.get("id"), str) else "")
        docs.append(_Doc(label, item.get("title", ""), item.get("text", "")))
    return docs
