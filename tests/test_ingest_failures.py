"""Ingest against misbehaving servers: every failure is recorded, nothing stops the pass, nothing is lost."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from monitor.cli import cli
from monitor.storage.db import Database
from monitor.storage.models import Article, Feed, FetchAttempt


def ingest(feeds_file) -> dict:
    result = CliRunner().invoke(cli, ["ingest", "--once", "--feeds", str(feeds_file), "--json", "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def feeds_yaml(tmp_path, *urls) -> str:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + "".join(f"  - url: '{u}'\n" for u in urls))
    return str(path)


def feed_row(env, url) -> Feed:
    db = Database(env["DATABASE_URL"])
    try:
        with db.session() as s:
            return s.scalar(select(Feed).where(Feed.url == url))
    finally:
        db.close()


BAD_FEEDS = {
    "404": ("/bad/404", "http_status", False),
    "500": ("/bad/500", "http_status", True),
    "wrong type": ("/bad/wrong-type", "content_type", False),
    "gzip bomb": ("/bad/gzip-bomb", "too_large", False),
    "redirect loop": ("/bad/redirect-loop", "too_many_redirects", False),
    "html instead of feed": ("/articles/news/2019/11/20/nelson-s-ot-goal-lifts-isles.html", "parse", False),
}


@pytest.mark.parametrize("name", BAD_FEEDS)
def test_a_bad_feed_is_a_recorded_failure_and_the_others_still_run(name, site_server, newsmon_env, tmp_path):
    path, kind, soft = BAD_FEEDS[name]
    bad, good = site_server.url(path), site_server.url("/natowatch.rss")
    summary = ingest(feeds_yaml(tmp_path, bad, good))
    assert summary["feeds_failed"] == 1 and summary["feeds_ok"] == 1 and summary["new_articles"] > 0
    feed = feed_row(newsmon_env, bad)
    assert feed.last_status == "error" and feed.consecutive_failures == 1 and feed.last_error
    db = Database(newsmon_env["DATABASE_URL"])
    with db.session() as s:
        attempt = s.scalar(select(FetchAttempt).where(FetchAttempt.feed_id == feed.id, FetchAttempt.kind == "feed"))
        assert attempt.outcome == "error" and attempt.error_kind == kind
    db.close()
    # Backoff: the failed feed is not due again right away.
    assert feed.next_fetch_at > datetime.now(timezone.utc) + timedelta(minutes=4)


def test_huge_feed_is_refused(site_server, newsmon_env, tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSMON_MAX_BYTES", str(2 * 1024 * 1024))
    url = site_server.url("/bad/huge?bytes=20000000")
    summary = ingest(feeds_yaml(tmp_path, url))
    assert summary["feeds_failed"] == 1
    assert "too_large" in (feed_row(newsmon_env, url).last_error or "") or "large" in feed_row(newsmon_env, url).last_error


def test_slow_feed_times_out(site_server, newsmon_env, tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSMON_TOTAL_TIMEOUT", "1")
    monkeypatch.setenv("NEWSMON_READ_TIMEOUT", "1")
    url = site_server.url("/bad/trickle?interval=0.2")
    assert ingest(feeds_yaml(tmp_path, url))["feeds_failed"] == 1
    assert feed_row(newsmon_env, url).consecutive_failures == 1


def test_retry_after_sets_the_next_poll(site_server, newsmon_env, tmp_path):
    url = site_server.url("/bad/retry-after?status=503&after=3000")
    ingest(feeds_yaml(tmp_path, url))
    feed = feed_row(newsmon_env, url)
    assert feed.next_fetch_at >= datetime.now(timezone.utc) + timedelta(seconds=2900)


def test_conditional_get_304_is_not_a_failure(site_server, newsmon_env, tmp_path):
    url = site_server.url("/bad/etag")
    feeds = feeds_yaml(tmp_path, url)
    first = ingest(feeds)
    assert first["feeds_ok"] == 1
    assert feed_row(newsmon_env, url).etag
    second = ingest(feeds)
    assert second["feeds_not_modified"] == 1 and second["feeds_failed"] == 0
    feed = feed_row(newsmon_env, url)
    assert feed.last_status == "not_modified" and feed.consecutive_failures == 0
    inm = [r.headers.get("if-none-match") for r in site_server.requests.for_path("/bad/etag")]
    assert inm[-1] and "newsmon-etag" in inm[-1]


def test_a_304_keeps_the_feeds_own_ttl_as_the_floor_of_its_interval(site_server, newsmon_env, tmp_path):
    url = site_server.url("/bad/etag?ttl=240")   # the default interval is 30 minutes
    feeds = feeds_yaml(tmp_path, url)
    assert ingest(feeds)["feeds_ok"] == 1
    after_200 = feed_row(newsmon_env, url)
    assert after_200.ttl_minutes == 240
    assert after_200.next_fetch_at >= datetime.now(timezone.utc) + timedelta(minutes=235)
    db = Database(newsmon_env["DATABASE_URL"])
    try:
        with db.session() as s:   # due now, as if the four hours had passed
            s.scalar(select(Feed).where(Feed.url == url)).next_fetch_at = datetime.now(timezone.utc)
    finally:
        db.close()
    assert ingest(feeds)["feeds_not_modified"] == 1
    after_304 = feed_row(newsmon_env, url)
    assert after_304.ttl_minutes == 240
    assert after_304.next_fetch_at >= datetime.now(timezone.utc) + timedelta(minutes=235)


def _feed_with_links(server, *links: str) -> str:
    items = "".join(
        f"<item><title>Item {i} on NATO</title><link>{link}</link><guid>g{i}-{abs(hash(link))}</guid>"
        f"<pubDate>Mon, 10 Feb 2025 1{i}:00:00 GMT</pubDate>"
        f"<description>Summary {i}: NATO allies discuss Ukraine aid and defence spending.</description></item>"
        for i, link in enumerate(links)
    )
    body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>{server.base}/</link>{items}</channel></rss>'
    return server.add_route(f"/feeds/custom-{abs(hash(links))}.rss", 200, {"Content-Type": "application/rss+xml"}, body)


def test_page_redirecting_to_a_forbidden_host_is_refused_and_kept_from_the_feed(site_server, newsmon_env, tmp_path):
    # 127.0.0.2 is loopback but not in NEWSMON_ALLOW_HOSTS: a buggy guard would only ever reach this machine.
    bad_page = site_server.url(f"/bad/redirect-to?location=http://127.0.0.2:{site_server.port}/articles/x.html")
    feed = _feed_with_links(site_server, bad_page)
    summary = ingest(feeds_yaml(tmp_path, feed))
    assert summary["feeds_ok"] == 1 and summary["pages_failed"] == 1 and summary["new_articles"] == 1
    db = Database(newsmon_env["DATABASE_URL"])
    with db.session() as s:
        attempt = s.scalar(select(FetchAttempt).where(FetchAttempt.kind == "page"))
        assert attempt.error_kind == "blocked"
        article = s.scalar(select(Article))
        assert article.text_source == "feed-summary" and "Summary 0" in article.text
    db.close()
    assert not [r for r in site_server.requests.all() if r.headers.get("host", "").startswith("127.0.0.2")]


def test_feed_pointing_at_a_private_address_is_refused(site_server, newsmon_env, tmp_path):
    url = f"http://localhost:{site_server.port}/natowatch.rss"  # loopback by name, not allowed
    summary = ingest(feeds_yaml(tmp_path, url))
    assert summary["feeds_failed"] == 1
    assert "blocked" in feed_row(newsmon_env, url).last_error.lower() or "not allowed" in feed_row(newsmon_env, url).last_error.lower()


def test_broken_pages_fall_back_to_feed_text(site_server, newsmon_env, tmp_path):
    junk = site_server.add_route("/pages/junk.html", 200, {"Content-Type": "text/html"}, b"\x00\xff<<<>>>" * 50)
    image = site_server.url("/bad/wrong-type")
    feed = _feed_with_links(site_server, junk, image)
    summary = ingest(feeds_yaml(tmp_path, feed))
    assert summary["new_articles"] == 2 and summary["fallbacks"] == 2
    db = Database(newsmon_env["DATABASE_URL"])
    with db.session() as s:
        assert {a.text_source for a in s.scalars(select(Article))} == {"feed-summary"}
    db.close()


def test_bad_config_exits_2_with_the_line(tmp_path, newsmon_env):
    bad = tmp_path / "feeds.yaml"
    bad.write_text("feeds:\n  - url: https://ok.example/rss\n  - url: ftp://nope.example/x\n")
    result = CliRunner().invoke(cli, ["ingest", "--once", "--feeds", str(bad)])
    assert result.exit_code == 2
    assert "feeds.yaml:3" in result.output and "feeds[1].url" in result.output


def test_bad_database_url_exits_2(tmp_path, newsmon_env, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql+nodriver://x@127.0.0.1/none")
    feeds = feeds_yaml(tmp_path, "https://ok.example/rss")
    result = CliRunner().invoke(cli, ["ingest", "--once", "--feeds", feeds])
    assert result.exit_code == 2 and "database" in result.output.lower()
