"""Retention: raw page HTML is kept, used for re-extraction, and cleared after N days; nothing else goes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner
from sqlalchemy import func, select, update

from monitor.cli import cli
from monitor.storage.db import Database
from monitor.storage.models import Article, FetchAttempt, Feed
from monitor.storage.retention import prune


def invoke(*args):
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def _ingest(site_server, tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {site_server.base}/natowatch.rss\n")
    result = invoke("ingest", "--once", "--no-progress", "--feeds", str(feeds))
    assert result.exit_code == 0, result.output


def test_page_html_is_kept_reextracted_and_pruned(site_server, newsmon_env, tmp_path):
    _ingest(site_server, tmp_path)
    db = Database(newsmon_env["DATABASE_URL"])
    try:
        with db.session() as s:
            page = s.scalars(select(Article).where(Article.text_source == "page").order_by(Article.id)).first()
            total = s.scalar(select(func.count(Article.id)))
            kept = s.scalar(select(func.count(Article.id)).where(Article.html.is_not(None)))
        assert page is not None and "<html" in page.html.lower() and kept == total

        # The kept page is what `extract --article` works on: the same text the pipeline stored.
        out = invoke("extract", "--article", str(page.id), "--json")
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["text"] == page.text

        # Old fetch attempts beside fresh ones; one article's page older than the retention.
        now = datetime.now(timezone.utc)
        with db.session() as s:
            feed_id = s.scalar(select(Feed.id))
            fresh_attempts = s.scalar(select(func.count(FetchAttempt.id)))
            s.add_all([FetchAttempt(feed_id=feed_id, kind="feed", url="http://x/", outcome="ok",
                                    started_at=now - timedelta(days=40)) for _ in range(3)])
            s.execute(update(Article).where(Article.id == page.id).values(updated_at=now - timedelta(days=31)))

        dry = invoke("prune", "--dry-run", "--json")
        assert dry.exit_code == 0 and json.loads(dry.stdout)["html_cleared"] == 1
        assert json.loads(dry.stdout)["attempts_deleted"] == 3
        with db.session() as s:  # a dry run changes nothing
            assert s.get(Article, page.id).html is not None

        done = json.loads(invoke("prune", "--json").stdout)
        assert done["html_cleared"] == 1 and done["attempts_deleted"] == 3 and not done["dry_run"]
        with db.session() as s:
            a = s.get(Article, page.id)
            assert a.html is None and a.text == page.text and a.story_id == page.story_id  # only the HTML went
            assert s.scalar(select(func.count(Article.id))) == total
            assert s.scalar(select(func.count(Article.html)).where(Article.html.is_not(None))) == total - 1
            assert s.scalar(select(func.count(FetchAttempt.id))) == fresh_attempts
        gone = invoke("extract", "--article", str(page.id))
        assert gone.exit_code == 2 and "pruned" in gone.output and len(gone.output.strip().splitlines()) == 1

        # NEWSMON_KEEP_HTML_DAYS decides the default; the search index is untouched.
        documents = json.loads(invoke("status", "--json").stdout)["index"]["documents"]
        res = prune(db, keep_html_days=0, keep_attempts_days=30)
        assert res.html_cleared == total - 1
        assert json.loads(invoke("status", "--json").stdout)["index"]["documents"] == documents == total
    finally:
        db.close()


def test_prune_text_output_and_a_bad_setting(newsmon_env, monkeypatch):
    out = invoke("prune", "--dry-run")
    assert out.exit_code == 0 and out.output.startswith("would clear raw HTML of 0 article(s)")
    monkeypatch.setenv("NEWSMON_KEEP_HTML_DAYS", "a month")
    bad = invoke("prune")
    assert bad.exit_code == 2 and "NEWSMON_KEEP_HTML_DAYS" in bad.output
