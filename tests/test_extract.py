"""Extraction: article bodies without page chrome, metadata, and clear errors for junk."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest
import trafilatura
from click.testing import CliRunner

from monitor.cli import cli
from monitor.stages.extract import TRAFILATURA_OPTIONS, ExtractionError, extract_page

DATA = Path(__file__).parent / "data"
SITE = DATA / "site"
BASE = "http://127.0.0.1:8000"


def _scorer():
    spec = importlib.util.spec_from_file_location("score_extraction", DATA / "extraction" / "score_extraction.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _site_page(path: str) -> bytes:
    return (SITE / path).read_bytes().replace(b"{BASE}", BASE.encode())


def test_fixture_site_bodies_are_extracted_without_chrome():
    expected = json.loads((SITE / "expected.json").read_text())
    bodies = json.loads((SITE / "expected_bodies.json").read_text())
    predictions = {}
    for item in expected["items"]:
        if not item["path"]:
            continue
        page = extract_page(_site_page(item["path"]), f"{BASE}/{item['path']}")
        predictions[item["path"]] = {"articleBody": page.text}
        for chrome in item["never_in_body"]:
            assert chrome not in page.text, (item["id"], chrome)
        first = " ".join(item["body_first"].split())[:60]
        assert first in " ".join(page.text.split()), item["id"]
    overall = _scorer().score(bodies, predictions)[1]
    assert overall["f1"] >= 0.97, overall


# The extraction set is split once: pages whose id (hex) starts with a number divisible by 5 are
# held aside (19 of 91) and only checked here; anything tuned on the set is tuned on the others.
def _held_aside(page_id: str) -> bool:
    return int(page_id[:8], 16) % 5 == 0


# Ours may lose at most half a point of F1 to trafilatura alone: our wrapper only adds declared
# metadata and drops a repeated headline, so it should never cost body text.
MARGIN = 0.005


def test_real_pages_score_at_least_like_trafilatura_in_our_mode():
    """Held-aside real pages: our extraction against trafilatura.extract in the mode we use, same pages, same run."""
    truth = {k: v for k, v in json.loads((DATA / "extraction" / "ground-truth.json").read_text()).items() if _held_aside(k)}
    assert len(truth) == 19
    ours, theirs = {}, {}
    for page_id, item in truth.items():
        html = gzip.decompress((DATA / "extraction" / "html" / f"{page_id}.html.gz").read_bytes())
        ours[page_id] = {"articleBody": extract_page(html, item["url"]).text}
        theirs[page_id] = {"articleBody": trafilatura.extract(html, url=item["url"], **TRAFILATURA_OPTIONS) or ""}
    scorer = _scorer()
    our_score, their_score = scorer.score(truth, ours)[1], scorer.score(truth, theirs)[1]
    assert their_score["f1"] > 0.9, their_score  # the baseline really extracted something
    assert our_score["f1"] >= their_score["f1"] - MARGIN, (our_score, their_score)


def test_metadata_of_a_site_page():
    path = "articles/wire-a/2025/02/update-1-trump-revives-talk-of-nato-exit-680518.html"
    page = extract_page(_site_page(path), f"{BASE}/{path}")
    assert page.title and "NATO" in page.title
    assert page.canonical_url == f"{BASE}/articles/news/2025/02/10/trump-revives-talk-of-nato-exit-as-allies.html"
    assert page.published is not None and page.published.year == 2025
    assert page.language == "en" and page.site_name


@pytest.mark.parametrize("junk", [b"", b"\x00\x01\x02\xff" * 100, b"<html><body></body></html>"])
def test_junk_gives_an_empty_result_or_a_clear_error(junk):
    try:
        page = extract_page(junk, "http://example.com/x")
    except ExtractionError as exc:
        assert str(exc)
    else:
        assert page.text == ""


def test_broken_html_still_yields_the_text():
    paragraph = "The alliance's defence ministers met in Brussels on Thursday to discuss spending targets. "
    broken = ("<html><head><title>Broken</title><body><div><p>" + paragraph * 6 + "<p><b>unclosed <i>tags"
              "<table><tr><td>cell</div></span></html>").encode()
    page = extract_page(broken, "http://example.com/broken")
    assert "defence ministers met in Brussels" in page.text


def test_deeply_nested_html_is_bounded():
    html = ("<div>" * 50_000 + "text" + "</div>" * 50_000).encode()
    try:
        page = extract_page(html, "http://example.com/deep")
    except ExtractionError:
        return
    assert len(page.text) < 1000


def test_headline_repeated_in_body_is_dropped():
    body = "".join(f"<p>Paragraph {i} of a report about the NATO summit in The Hague and its spending goal.</p>" for i in range(8))
    html = f"<html><head><title>Summit agrees 5%</title></head><body><article><h1>Summit agrees 5%</h1>{body}</article></body></html>"
    page = extract_page(html.encode(), "http://example.com/s")
    assert not page.text.startswith("Summit agrees 5%")
    assert page.text.startswith("Paragraph 0")


def test_cli_extract_json_from_a_file(tmp_path):
    path = "articles/news/2025/02/10/trump-revives-talk-of-nato-exit-as-allies.html"
    file = tmp_path / "page.html"
    file.write_bytes(_site_page(path))
    result = CliRunner().invoke(cli, ["extract", str(file), "--url", f"{BASE}/{path}", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"url", "title", "text", "published", "language", "author"}
    assert data["text"].startswith("In the wake of his re-election")
    assert data["published"].startswith("2025-02-10") and data["language"] == "en"


def test_cli_extract_missing_file_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["extract", str(tmp_path / "nope.html"), "--json"])
    assert result.exit_code == 2 and "no such file" in result.output
