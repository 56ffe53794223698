"""The command line as users and scripts meet it: help, JSON output, feed management, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from monitor.cli import cli
from monitor.storage.db import Database
from monitor.storage.models import Article, Feed


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_lists_every_command():
    out = invoke("--help").output
    for command in ("ingest", "run", "search", "extract", "feeds", "status", "story", "cluster", "recluster",
                    "reindex", "index", "demo"):
        assert command in out
    assert "--feeds" in invoke("ingest", "--help").output


def test_ingest_requires_once():
    assert invoke("ingest").exit_code == 2


def test_feeds_add_list_remove_and_opml_round_trip(newsmon_env, tmp_path):
    assert invoke("feeds", "add", "https://news.example/rss.xml", "--name", "News").exit_code == 0
    assert invoke("feeds", "add", "https://other.example/atom", "--interval", "60").exit_code == 0
    listed = json.loads(invoke("feeds", "list", "--json").output)
    assert [f["url"] for f in listed] == ["https://news.example/rss.xml", "https://other.example/atom"]
    assert listed[1]["interval_minutes"] == 60

    opml = tmp_path / "feeds.opml"
    assert invoke("feeds", "export-opml", "-o", str(opml)).exit_code == 0
    assert "https://other.example/atom" in opml.read_text()

    assert invoke("feeds", "remove", "https://news.example/rss.xml").exit_code == 0
    assert [f["url"] for f in json.loads(invoke("feeds", "list", "--json").output)] == ["https://other.example/atom"]
    assert invoke("feeds", "import-opml", str(opml)).exit_code == 0
    assert len(json.loads(invoke("feeds", "list", "--json").output)) == 2

    assert invoke("feeds", "remove", "999").exit_code == 2


def test_feeds_add_refuses_a_non_http_url(newsmon_env):
    result = invoke("feeds", "add", "file:///etc/passwd")
    assert result.exit_code == 2 and "http" in result.output


def test_import_of_hostile_opml_is_a_clear_error(newsmon_env, tmp_path):
    bad = tmp_path / "bad.opml"
    bad.write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><opml><body>&a;</body></opml>')
    result = invoke("feeds", "import-opml", str(bad))
    assert result.exit_code == 2 and "bad.opml" in result.output


def test_search_on_an_empty_index_and_a_bad_query(newsmon_env):
    result = invoke("search", "NATO", "--json")
    assert result.exit_code == 0 and json.loads(result.output) == {"total": 0, "hits": []}
    bad = invoke("search", '"unbalanced phrase', "--json")
    assert bad.exit_code == 2 and "query error" in bad.output
    assert invoke("search", "x", "--since", "yesterday").exit_code == 2


def test_status_on_a_new_home(newsmon_env):
    data = json.loads(invoke("status", "--json").output)
    assert data["articles"] == 0 and data["feeds"] == [] and data["index"]["outbox_pending"] == 0


def _write_feeds(tmp_path: Path, base: str) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + "".join(f"  - url: {base}/{n}\n" for n in ("natowatch.rss", "ukraineaid.atom", "foreignpolicy.xml")))
    return path


def test_story_shows_why_articles_are_grouped(site_server, newsmon_env, tmp_path):
    assert invoke("ingest", "--once", "--no-progress", "--feeds", str(_write_feeds(tmp_path, site_server.base))).exit_code == 0
    hits = json.loads(invoke("search", '"NATO exit"', "--json").output)["hits"]
    story_id = hits[0]["story_id"]
    data = json.loads(invoke("story", str(story_id), "--json").output)
    assert data["article_count"] >= 3
    methods = {a["story_method"] for a in data["articles"]}
    assert "new-story" in methods and len(methods) > 1
    joined = [a for a in data["articles"] if a["story_method"] != "new-story"]
    assert all(a["story_score"] is not None and a["why"] for a in joined)
    text = invoke("story", str(story_id)).output
    assert "started the story" in text and ("copy of" in text or "similar" in text)
    assert invoke("story", "999999").exit_code == 2


def test_recluster_keeps_the_same_grouping(site_server, newsmon_env, tmp_path):
    assert invoke("ingest", "--once", "--no-progress", "--feeds", str(_write_feeds(tmp_path, site_server.base))).exit_code == 0
    db = Database(newsmon_env["DATABASE_URL"])
    with db.session() as s:
        before = {a.id: (a.story_id, a.duplicate_of) for a in s.scalars(select(Article))}
    assert invoke("recluster").exit_code == 0
    with db.session() as s:
        after = {a.id: (a.story_id, a.duplicate_of) for a in s.scalars(select(Article))}
    db.close()
    def grouping(rows):
        groups: dict[int, set[int]] = {}
        for aid, (story, _) in rows.items():
            groups.setdefault(story, set()).add(aid)
        return sorted(sorted(g) for g in groups.values()), {a: d for a, (_, d) in rows.items()}

    assert grouping(after) == grouping(before)


def test_reindex_and_index_commands(site_server, newsmon_env, tmp_path):
    assert invoke("ingest", "--once", "--no-progress", "--feeds", str(_write_feeds(tmp_path, site_server.base))).exit_code == 0
    result = invoke("reindex", "--no-progress")
    assert result.exit_code == 0 and "reindexed" in result.output
    n = int(result.output.split()[1])
    assert json.loads(invoke("status", "--json").output)["index"]["documents"] == n
    assert invoke("index").exit_code == 0


def test_run_fetches_due_feeds_and_stops_cleanly_on_sigterm(site_server, newsmon_env, tmp_path):
    feeds = _write_feeds(tmp_path, site_server.base)
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "--feeds", str(feeds), "--workers", "1", "--tick", "5"],
                            env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = Database(newsmon_env["DATABASE_URL"], migrate_schema=False)
    try:
        deadline = time.monotonic() + 120
        count = 0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                with db.session() as s:
                    count = s.scalar(select(func.count(Article.id)))
                    fed = s.scalar(select(func.count(Feed.id)).where(Feed.last_status == "ok"))
            except Exception:  # tables not created yet
                continue
            if count and fed == 3:
                break
        assert count > 0 and proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        with db.session() as s:
            assert s.scalar(select(func.count(Feed.id)).where(Feed.claimed_by.is_not(None))) == 0
            assert all(f.next_fetch_at is not None for f in s.scalars(select(Feed)))
    finally:
        if proc.poll() is None:
            proc.kill()
        db.close()


def test_demo_shows_all_three_topics(tmp_path):
    from monitor.demo import run_demo

    summary = run_demo(keep_running=False, home=tmp_path / "demo")
    assert summary["new_articles"] > 10
    assert {"nato", "ukraine-aid", "trump-foreign-policy"} <= set(summary["topics"])
    assert all(summary["topics"][t] > 0 for t in ("nato", "ukraine-aid", "trump-foreign-policy"))


def test_ingest_keeps_storing_while_the_search_backend_is_down(site_server, newsmon_env, tmp_path, monkeypatch):
    feeds = str(_write_feeds(tmp_path, site_server.base))
    monkeypatch.setenv("SEARCH_URL", "http://127.0.0.1:9")  # a Meilisearch that is not there
    down = invoke("ingest", "--once", "--no-progress", "--feeds", feeds, "--json")
    assert down.exit_code == 0, down.output
    summary = json.loads(down.output.strip().splitlines()[-1])
    assert summary["new_articles"] > 0 and summary["index"]["error"]
    status = json.loads(invoke("status", "--json").output)
    assert status["index"]["backend"] is not True and status["index"]["outbox_pending"] == summary["new_articles"]

    monkeypatch.setenv("SEARCH_URL", newsmon_env["SEARCH_URL"])  # the backend is back
    drained = invoke("index")
    assert drained.exit_code == 0 and f"sent {summary['new_articles']}" in drained.output
    status = json.loads(invoke("status", "--json").output)
    assert status["index"]["outbox_pending"] == 0 and status["index"]["documents"] == status["articles"]
