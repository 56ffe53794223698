"""Shared by the web tests: a home built by the real pipeline from the fixture site (plus one feed
whose description carries <script>), and an admin account made with the real CLI."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from tests.dbfixtures import app_environment, temporary_database

ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "correct horse battery"
HOSTILE_TITLE = "NATO hostile description check"
HOSTILE_TEXT = "<script>window.pwned=1</script>"
# The description is HTML (escaped once for XML): a <script> shown as text, then a real <script> element.
HOSTILE_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Hostile Wire</title><link>{base}/</link><description>tests</description>
<item><title>NATO hostile description check</title><link>{base}/articles/hostile/missing-page.html</link>
<guid>hostile-1</guid><pubDate>Tue, 11 Feb 2025 09:00:00 GMT</pubDate>
<description>&lt;p&gt;NATO allies said &amp;lt;script&amp;gt;window.pwned=1&amp;lt;/script&amp;gt; is not a threat.&lt;/p&gt;&lt;script&gt;window.pwned=2&lt;/script&gt;&lt;img src=x onerror="window.pwned=3"&gt;</description>
</item></channel></rss>
"""
FEEDS = ("natowatch.rss", "ukraineaid.atom", "foreignpolicy.xml")


def run_cli(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


@contextmanager
def ingested_home(site_server, tmp_path: Path):
    """Environment of a home ingested from the fixture site; yields (env, feeds file)."""
    site_server.add_route("/hostile.rss", headers={"Content-Type": "application/rss+xml; charset=utf-8"},
                          body=HOSTILE_FEED.format(base=site_server.base))
    with temporary_database(tmp_path) as url, pytest.MonkeyPatch.context() as mp:
        env = app_environment(tmp_path, url)
        env["NEWSMON_SECRET"] = "test-secret-0123456789abcdef"
        feeds = tmp_path / "feeds.yaml"
        feeds.write_text("feeds:\n" + "".join(f"  - url: {site_server.base}/{n}\n" for n in FEEDS + ("hostile.rss",)))
        env["NEWSMON_FEEDS"] = str(feeds)
        for key, value in env.items():
            mp.setenv(key, value)
        code, out = run_cli("ingest", "--once", "--json", "--no-progress")
        assert code == 0, out
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["feeds_ok"] == 4, summary
        code, out = run_cli("users", "add", ADMIN_EMAIL, "--admin", "--password-stdin", input=ADMIN_PASSWORD + "\n")
        assert code == 0, out
        yield env, feeds
