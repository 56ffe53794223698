"""`newsmon demo`: the whole flow offline, on the bundled sample news site.

Serves `monitor/demo/site/` (three feeds, article pages with boilerplate and syndicated
copies) on 127.0.0.1, ingests it into a fresh demo home with the embedded defaults (SQLite +
Tantivy), shows what landed per topic and the biggest story, and keeps the site up so the user
can try `newsmon search`, `newsmon story` and `newsmon status` against the demo home.
"""

from __future__ import annotations

import json
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import click
from sqlalchemy import func, select

SITE_DIR = Path(__file__).parent / "site"
_TYPES = {".rss": "application/rss+xml", ".atom": "application/atom+xml", ".xml": "application/xml", ".html": "text/html"}


class _SiteHandler(SimpleHTTPRequestHandler):
    """Serves the sample site with {BASE} filled in; query strings are ignored."""

    def __init__(self, *args, site: Path, redirects: dict[str, str], **kwargs):
        self.site, self.redirects = site, redirects
        super().__init__(*args, directory=str(site), **kwargs)

    def log_message(self, *args) -> None:  # keep the demo's terminal readable
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        base = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        if path in self.redirects:
            self.send_response(301)
            self.send_header("Location", base + self.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        file = (self.site / path.lstrip("/")).resolve()
        if self.site.resolve() not in file.parents or not file.is_file() or file.suffix not in _TYPES:
            self.send_error(404)
            return
        body = file.read_bytes().replace(b"{BASE}", base.encode())
        self.send_response(200)
        self.send_header("Content-Type", f"{_TYPES[file.suffix]}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve_sample_site(port: int = 0, site: Path = SITE_DIR) -> ThreadingHTTPServer:
    """Start the sample site on 127.0.0.1 in a daemon thread; `server.server_address` tells the port."""
    redirects = json.loads((site / "expected.json").read_text())["redirects"]
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(_SiteHandler, site=site, redirects=redirects))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="sample-site").start()
    return server


FEED_FILES = ("natowatch.rss", "ukraineaid.atom", "foreignpolicy.xml")


def write_demo_feeds(path: Path, base: str) -> None:
    lines = ["# Feeds of the bundled sample site (written by `newsmon demo`).", "feeds:"]
    lines += [f"  - url: {base}/{name}" for name in FEED_FILES]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_demo(*, port: int = 0, keep_running: bool = True, home: Path | None = None,
             web: bool = True, web_port: int = 8000) -> dict:
    from monitor.app import App
    from monitor.config import Settings
    from monitor.run.ingest import ingest_pass
    from monitor.storage.models import Article, ArticleTopic, Story
    from monitor.run.pipeline import Pipeline

    home = home or Path(tempfile.mkdtemp(prefix="newsmon-demo-"))
    server = serve_sample_site(port)
    host, port = server.server_address[:2]
    base = f"http://{host}:{port}"
    feeds_file = home / "feeds.yaml"
    home.mkdir(parents=True, exist_ok=True)
    write_demo_feeds(feeds_file, base)
    env = {"NEWSMON_HOME": str(home), "NEWSMON_ALLOW_HOSTS": host, "NEWSMON_FEEDS": str(feeds_file)}
    settings = Settings.from_env(env)
    app = App(settings)
    click.echo(f"sample news site: {base}/  (feeds: {', '.join(FEED_FILES)})")
    click.echo(f"demo home: {home}")
    try:
        pipeline = Pipeline(app.db, settings, app.feeds_config, workers=1)
        try:
            result = ingest_pass(app, pipeline, only_config_feeds=True, due_only=False)
        finally:
            pipeline.close()
        s = result.summary
        click.echo(f"ingested: {s.new_articles} articles from {s.feeds_ok} feeds "
                   f"({s.duplicates} duplicate links folded, {s.pages_failed} page(s) failed and fell back to feed text)")
        with app.db.session() as db:
            per_topic = dict(db.execute(select(ArticleTopic.topic, func.count()).group_by(ArticleTopic.topic)).all())
            copies = db.scalar(select(func.count(Article.id)).where(Article.duplicate_of.is_not(None)))
            biggest = db.scalar(select(Story).order_by(Story.article_count.desc(), Story.id).limit(1))
            story_line = (biggest.id, biggest.headline, biggest.article_count, biggest.source_count) if biggest else None
        click.echo("articles per topic: " + ", ".join(f"{t}: {n}" for t, n in sorted(per_topic.items())))
        click.echo(f"near-duplicate copies recognised: {copies}")
        if story_line:
            click.echo(f"biggest story #{story_line[0]}: {story_line[1]!r} — {story_line[2]} articles from {story_line[3]} sources")
        for topic in sorted(per_topic):
            from search.query import SearchQuery

            hits = app.backend.search(SearchQuery(topics=[topic], sort="date", limit=3, collapse_stories=True))
            click.echo(f"\n[{topic}] {hits.total} hit(s), newest stories:")
            for h in hits.hits:
                click.echo(f"  {h.published_at:%Y-%m-%d}  {h.title}  ({h.source})")
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        click.echo("\nLook around (in another terminal):")
        click.echo(f"  export {exports}")
        click.echo('  newsmon search "NATO" --topic nato      newsmon search \'"Ukraine aid" -Trump\' --json')
        if story_line:
            click.echo(f"  newsmon story {story_line[0]}            newsmon status")
        summary = {"home": str(home), "base": base, "new_articles": s.new_articles, "topics": per_topic}
        if keep_running and web:
            serve_demo_web(app, web_port)
        elif keep_running:
            click.echo(f"\nThe sample site stays up at {base}/ — press Ctrl-C to stop.")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass
        return summary
    finally:
        app.close()
        server.shutdown()


def serve_demo_web(app, web_port: int) -> None:
    """Serve the demo home in the web UI on 127.0.0.1 (another port if `web_port` is taken) until Ctrl-C."""
    from monitor.cli.common import CliError
    from monitor.cli.web import serve_app
    from monitor.web import create_app

    def ready(url: str) -> None:
        click.echo(f"\nOpen the web UI in a browser: {url}")
        click.echo("(search, filter, read a story, see the timeline, download a CSV) — press Ctrl-C to stop.")

    web_app = create_app(app)
    try:
        serve_app(web_app, "127.0.0.1", web_port, on_ready=ready)
    except CliError:
        serve_app(web_app, "127.0.0.1", 0, on_ready=ready)
