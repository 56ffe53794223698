"""`newsmon extract`: extraction of one page, for checking what the pipeline would store."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli.common import CliError, echo_json, guard, open_app


@click.command()
@click.argument("file_or_url")
@click.option("--url", "page_url", help="The page's address, when FILE_OR_URL is a file (for links and canonical).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (url, title, text, published, language, author).")
@guard
def extract(file_or_url: str, page_url: str | None, as_json: bool) -> None:
    """Extract the article text and metadata of one page (a saved file or a URL)."""
    from monitor.stages.extract import ExtractionError, extract_page
    from monitor.net.fetch import FetchError, Fetcher
    from monitor.net.policy import fetch_policy

    if file_or_url.startswith(("http://", "https://")):
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
