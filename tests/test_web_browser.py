"""The web UI in a real browser: Debian's chromium driven by Playwright against a real `newsmon serve`.

Chromium must be at /usr/bin/chromium (`.ci/run` installs it with apt-get); without it these tests
fail with a message saying so — they are never skipped. Screenshots of the main pages are saved
under test-artifacts/screenshots/ (ignored by git) for a reviewer to look at.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.websupport import ADMIN_EMAIL, ADMIN_PASSWORD, HOSTILE_TEXT, ingested_home

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def server(site_server, tmp_path_factory):
    """A real `newsmon serve` subprocess on 127.0.0.1 over a home the real pipeline built."""
    with ingested_home(site_server, tmp_path_factory.mktemp("webui")) as (env, feeds):
        cmd = [sys.executable, "-c", "from monitor.cli import main; main()", "serve", "--host", "127.0.0.1", "--port", "0"]
        proc = subprocess.Popen(cmd, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stderr.readline()
            m = re.search(r"http://127\.0\.0\.1:\d+/", line)
            assert m, f"newsmon serve did not print its address: {line!r}"
            base = m.group(0).rstrip("/")
            for _ in range(100):
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                pytest.fail("newsmon serve never answered /healthz")
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    "the browser tests do not run without it", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]'", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def total_of(page) -> int:
    return int(page.locator("#total strong").inner_text().replace(",", ""))


def test_search_shows_results_grouped_by_story(server, page):
    page.goto(server + "/")
    page.fill("input[name=q]", "NATO")
    page.press("input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"q=NATO"))
    assert "stories" in page.locator("#total").inner_text()
    api = httpx.get(server + "/api/v1/search", params={"q": "NATO", "collapse": 1}).json()
    assert total_of(page) == api["total"]
    assert page.locator("li.hit").count() == len(api["hits"])
    assert page.locator(".story-line .story-size").first.inner_text().endswith(("source", "sources"))
    assert page.locator("mark").count() > 0
    shot(page, "search-results")
    page.goto(server + "/")
    shot(page, "search-front")


def test_apply_and_remove_a_filter(server, page):
    page.goto(server + "/?q=NATO")
    before = total_of(page)
    facet = page.locator("aside.facets li", has_text="ukraine-aid").first
    count = int(facet.locator(".count").inner_text())
    facet.locator("a").click()
    page.wait_for_url(re.compile(r"topic=ukraine-aid"))
    assert page.locator(".chip", has_text="topic: ukraine-aid").is_visible()
    collapsed = httpx.get(server + "/api/v1/search", params={"q": "NATO", "topic": "ukraine-aid", "collapse": 1}).json()
    assert total_of(page) == collapsed["total"] and collapsed["total"] <= count
    shot(page, "search-filtered")
    page.locator(".chip", has_text="topic: ukraine-aid").click()
    page.wait_for_url(lambda url: "topic=" not in url)
    assert total_of(page) == before


def test_filters_work_without_javascript(server, browser):
    context = browser.new_context(java_script_enabled=False)
    try:
        pg = context.new_page()
        pg.goto(server + "/?q=aid")
        pg.select_option("select[name=topic]", "nato")
        pg.click("form.searchbox button[type=submit]")
        pg.wait_for_url(re.compile(r"topic=nato"))
        expected = httpx.get(server + "/api/v1/search", params={"q": "aid", "topic": "nato", "collapse": 1}).json()
        assert int(pg.locator("#total strong").inner_text()) == expected["total"]
    finally:
        context.close()


def test_syntax_error_shows_on_the_page(server, page):
    page.goto(server + "/")
    page.fill("input[name=q]", 'NATO "summit')
    with page.expect_response(lambda r: "q=" in r.url) as resp:
        page.press("input[name=q]", "Enter")
    assert resp.value.status == 400
    error = page.locator("#qerror")
    assert "unbalanced quote" in error.inner_text() and "position 5" in error.inner_text()
    assert page.input_value("input[name=q]") == 'NATO "summit'
    caret = page.locator("pre.caret").inner_text().splitlines()
    assert caret[1].index("^") == 5
    shot(page, "syntax-error")


def test_click_a_timeline_bar_narrows_the_range(server, page):
    page.goto(server + "/?sort=date&collapse=0")
    full = total_of(page)
    bars = page.locator("svg.chart a.bar-link")
    counts = [int(bars.nth(i).locator("rect.bar").get_attribute("data-count")) for i in range(bars.count())]
    i = max(range(len(counts)), key=lambda k: counts[k])
    assert 0 < counts[i] < full
    shot(page, "timeline")
    bars.nth(i).locator("rect.hit").click()
    page.wait_for_url(re.compile(r"since=\d{4}-\d\d-\d\d&until=\d{4}-\d\d-\d\d"))
    assert total_of(page) == counts[i]
    assert page.locator(".chip", has_text="–").is_visible()


def test_story_page_folds_copies(server, page):
    grouped = httpx.get(server + "/api/v1/search", params={"collapse": 1, "limit": 1000}).json()
    for hit in sorted(grouped["hits"], key=lambda h: -h["story_size"]):
        story = httpx.get(f"{server}/api/v1/stories/{hit['story_id']}").json()
        if any(a["duplicate_of"] for a in story["articles"]):
            break
    else:
        pytest.fail("no story with copies in the fixture site")
    page.goto(f"{server}/stories/{story['id']}")
    copies = [a for a in story["articles"] if a["duplicate_of"]]
    details = page.locator("details.copies").first
    assert re.fullmatch(r"and \d+ cop(y|ies)", details.locator("summary").inner_text().strip())
    first_copy = details.locator("li").first
    assert not first_copy.is_visible()  # folded under its original
    details.locator("summary").click()
    assert first_copy.is_visible()
    assert page.locator("li.member").count() == len(story["articles"]) - len(copies)
    shot(page, "story")


def test_csv_download_matches_the_api(server, page):
    page.goto(server + "/?q=aid&sort=date")
    with page.expect_download() as dl:
        page.click(".exports a:text-is('CSV')")
    path = dl.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    api = httpx.get(server + "/api/v1/search", params={"q": "aid", "sort": "date", "limit": 1000}).json()
    assert [r["id"] for r in rows] == [h["id"] for h in api["hits"]]
    assert [r["title"] for r in rows] == [h["title"] for h in api["hits"]]


def test_log_in_and_add_a_feed(server, page):
    page.goto(server + "/admin/feeds")
    page.wait_for_url(re.compile(r"/login\?next="))
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", "not the password")
    page.click("form button[type=submit]:text('Sign in')")
    assert "wrong email or password" in page.locator(".flash.error").inner_text()
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("form button[type=submit]:text('Sign in')")
    page.wait_for_url(re.compile(r"/admin/feeds$"))
    url = "http://127.0.0.1:9/browser-added.rss"
    page.fill("#add-feed input[name=url]", url)
    page.fill("#add-feed input[name=name]", "Added in the browser")
    page.click("#add-feed button[type=submit]")
    assert "added feed" in page.locator(".flash").inner_text()
    assert page.locator("td", has_text="Added in the browser").is_visible()
    shot(page, "admin-feeds")
    feeds = httpx.get(server + "/api/v1/feeds").json()
    assert any(f["url"] == url and f["name"] == "Added in the browser" for f in feeds)
    page.goto(server + "/feeds")
    shot(page, "feeds")


def test_script_in_feed_description_is_shown_as_text(server, page):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    hits = httpx.get(server + "/api/v1/search", params={"q": '"hostile description check"'}).json()["hits"]
    page.goto(f"{server}/articles/{hits[0]['id']}")
    assert HOSTILE_TEXT in page.locator("section.text").inner_text()
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("section.text script, section.text img").count() == 0
    assert dialogs == []
    shot(page, "article")


def test_docs_page_loads_nothing_from_elsewhere(server, page):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server + "/docs")
    assert page.locator("h2", has_text="/api/v1/search").count() == 1
    assert requests and all(u.startswith(server) for u in requests), requests
    shot(page, "api-docs")
