"""`newsmon extract`: extraction of one page, for checking what the pipeline would store."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli.common import CliError, echo_json, guard, open_app


@click.command()
@click.argument("file_or_url", required=False)
@click.option("--url", "page_url", help="The page's address, when FILE_OR_URL is a file (for links and canonical).")
@click.option("--article", "article_id", type=click.IntRange(1), default=None,
              help="Re-extract the page HTML stored with this article (kept NEWSMON_KEEP_HTML_DAYS days).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (url, title, text, published, language, author).")
@guard
def extract(file_or_url: str | None, page_url: str | None, article_id: int | None, as_json: bool) -> None:
    """Extract the article text and metadata of one page: a saved file (plain or gzip), a URL, or
    the page stored with an article (--article ID), e.g. to see what a newer trafilatura makes of it.

    Files get the fetcher's limits: at most NEWSMON_MAX_BYTES on disk and once inflated.
    """
    from monitor.config import Settings
    from monitor.stages.extract import ExtractionError, extract_page
    from monitor.net.fetch import FetchError, Fetcher, read_page_file
    from monitor.run.pipeline import fetch_policy

    if (file_or_url is None) == (article_id is None):
        raise CliError("give a FILE_OR_URL or --article ID (one of them)")
    if article_id is not None:
        content, url = _stored_page(article_id)
        url = page_url or url
    elif file_or_url.startswith(("http://", "https://")):
        settings = open_app().settings
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
        try:
            content = read_page_file(path, Settings.from_env().max_bytes)
        except FetchError as exc:
            raise CliError(f"{file_or_url}: {exc.args[0] if exc.args else exc}") from None
        except OSError as exc:
            raise CliError(f"{file_or_url}: {exc.strerror or exc}") from None
        url = page_url or path.resolve().as_uri()
    try:
        page = extract_page(content, url)
    except ExtractionError as exc:
        raise click.ClickException(f"{file_or_url or f'article {article_id}'}: {exc}") from None
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


def _stored_page(article_id: int) -> tuple[bytes, str]:
    from monitor.storage.queries import stored_page

    app = open_app()
    try:
        with app.db.session() as s:
            found = stored_page(s, article_id)
    finally:
        app.close()
    if found is None:
        raise CliError(f"no such article: {article_id}")
    html, url, text_source = found
    if html is None or text_source != "page":
        why = ("its page HTML was pruned (kept NEWSMON_KEEP_HTML_DAYS days)" if text_source == "page"
               else f"its text came from the feed ({text_source}), no page was stored")
        raise CliError(f"article {article_id}: nothing to re-extract: {why}")
    return html.encode("utf-8"), url
