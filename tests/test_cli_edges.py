"""CLI edges: huge numbers, oversized and broken files, duplicate feeds, odd dates and queries.

Each case must end in one clear line and a non-zero exit — never a traceback."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from click.testing import CliRunner

from monitor.cli import cli

HUGE = str(10**30)


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def _error_line(result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("args", [
    ["search", "NATO", "--offset", HUGE],
    ["story", HUGE],
    ["story", str(2**63)],
    ["feeds", "remove", HUGE],
    ["feeds", "remove", "²"],  # a digit to str.isdigit, not to int()
    ["extract", "--article", HUGE],
    ["prune", "--html-days", HUGE],
])
def test_huge_numbers_are_a_clear_error(newsmon_env, args):
    result = invoke(*args)
    assert result.exit_code == 2
    line = _error_line(result)
    assert "Overflow" not in line and ("no such" in line or "range" in line), line


def test_huge_numbers_in_settings_are_a_clear_error(newsmon_env, monkeypatch):
    monkeypatch.setenv("NEWSMON_KEEP_HTML_DAYS", HUGE)
    result = invoke("prune")
    assert result.exit_code == 2 and "NEWSMON_KEEP_HTML_DAYS: must be at most" in _error_line(result)


def test_extract_applies_the_fetcher_limits_to_files(newsmon_env, tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSMON_MAX_BYTES", str(10 * 1024 * 1024))
    # A 50 MB page that takes no disk space (sparse file).
    big = tmp_path / "big.html"
    with big.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    result = invoke("extract", str(big))
    assert result.exit_code == 2 and "over the cap" in _error_line(result)

    # A gzip bomb: 200 MB of zeros in ~200 KB, written streaming; never inflated past the cap.
    bomb = tmp_path / "bomb.html.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as gz:
        block = bytes(1024 * 1024)
        for _ in range(200):
            gz.write(block)
    assert bomb.stat().st_size < 1024 * 1024
    result = invoke("extract", str(bomb))
    assert result.exit_code == 2 and "inflates past the cap" in _error_line(result)

    # The magic bytes decide, not the name: a bomb saved as .html is caught the same way.
    disguised = tmp_path / "page.html"
    disguised.write_bytes(bomb.read_bytes())
    assert "inflates past the cap" in _error_line(invoke("extract", str(disguised)))


@pytest.mark.parametrize("content, what", [
    (b"\x1f\x8b\x08\x00garbage that is not deflate data at all", "not a valid gzip file"),
    (gzip.compress(b"<html><body>" + b"<p>Allies met in Brussels.</p>" * 200 + b"</body></html>")[:-5],
     "truncated"),
])
def test_extract_reports_a_bad_gzip_in_one_line(newsmon_env, tmp_path, content, what):
    path = tmp_path / "page.html.gz"
    path.write_bytes(content)
    result = invoke("extract", str(path))
    assert result.exit_code == 2 and what in _error_line(result)


def test_extract_still_reads_a_good_gzip_page(newsmon_env, tmp_path):
    body = ("<html><head><title>Ministers meet</title></head><body><article>"
            + "<p>NATO defence ministers met in Brussels to discuss the spending goal and Ukraine.</p>" * 20
            + "</article></body></html>").encode()
    path = tmp_path / "page.html.gz"
    path.write_bytes(gzip.compress(body))
    result = invoke("extract", str(path), "--json")
    assert result.exit_code == 0 and "Brussels" in json.loads(result.stdout)["text"]
    assert zlib  # the stdlib inflater is what the fetcher uses too


def test_feeds_add_validates_as_feeds_yaml_and_knows_its_feeds(newsmon_env):
    assert invoke("feeds", "add", "https://news.example/rss.xml?utm_source=x").exit_code == 0
    for spelling in ("HTTPS://NEWS.example/rss.xml", "https://news.example:443/rss.xml",
                     "https://news.example/rss.xml?utm_campaign=y", " https://news.example/rss.xml "):
        again = invoke("feeds", "add", spelling)
        assert again.exit_code == 0 and "already subscribed" in again.output, (spelling, again.output)
    assert len(json.loads(invoke("feeds", "list", "--json").stdout)) == 1
    # The feeds.yaml rule: an http(s) URL with a host, no spaces, a numeric port.
    for bad in ("ftp://news.example/rss", "https://news example/rss", "https://news.example:port/rss", "https:///rss",
                "news.example/rss"):
        result = invoke("feeds", "add", bad)
        assert result.exit_code == 2 and "must be an http(s) URL" in _error_line(result), bad


def test_since_after_until_is_an_error(newsmon_env):
    result = invoke("search", "NATO", "--since", "2025-03-01", "--until", "2025-02-01")
    assert result.exit_code == 2 and "is after --until" in _error_line(result)
    assert invoke("search", "NATO", "--since", "2025-02-01", "--until", "2025-02-01").exit_code == 0


def test_a_query_may_start_with_an_exclusion(site_server, newsmon_env, tmp_path):
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {site_server.base}/natowatch.rss\n")
    assert invoke("ingest", "--once", "--no-progress", "--feeds", str(feeds)).exit_code == 0
    every = json.loads(invoke("search", "NATO", "--json").stdout)["total"]
    without = json.loads(invoke("search", "--json", "--", "-Trump", "NATO").stdout)["total"]
    with_trump = json.loads(invoke("search", "NATO", "Trump", "--json").stdout)["total"]
    assert every > 0 and without == every - with_trump
    # Without `--` the word looks like an option: the error says what to type.
    wrong = invoke("search", "NATO", "-Trump")
    assert wrong.exit_code == 2 and "newsmon search -- NATO -Trump" in _error_line(wrong)
    assert "newsmon search -- NATO -Trump" in invoke("search", "--help").output.replace("\n  ", " ")


def test_cluster_fails_when_no_line_is_valid(tmp_path):
    bad = tmp_path / "in.jsonl"
    bad.write_text("not json\n{\"no\": \"id\"}\n[1, 2]\n")
    result = invoke("cluster", str(bad), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2 and "no valid input line" in _error_line(result)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert invoke("cluster", str(empty)).exit_code == 2
