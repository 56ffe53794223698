"""The digest's web side in a real browser (Playwright driving Debian's chromium): subscribe form ->
opt-in link -> digest -> unsubscribe button; and the digest HTML laid out at phone width."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from monitor.app import App
from monitor.cli import cli
from tests.digestkit import StoryPlan, WebServer, digest_environment, free_port, seed, smtp_server  # noqa: F401

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_subscribe_confirm_and_unsubscribe_in_a_browser(newsmon_env, smtp_server, monkeypatch, browser, tmp_path):
    port = free_port()
    for k, v in digest_environment(newsmon_env, smtp_server, base_url=f"http://127.0.0.1:{port}").items():
        monkeypatch.setenv(k, v)
    app = App.from_env()
    web = WebServer(app, port).start()
    try:
        page = browser.new_page()
        page.goto(f"{web.base}/digest/subscribe?q=NATO&topic=nato")
        page.fill("#digest-email", "browser@example.org")
        page.select_option("#digest-hour", "6")
        page.select_option("select[name=tz]", "Europe/Berlin")
        page.click("button[type=submit]")
        assert page.locator("h1").inner_text() == "Check your inbox"
        [confirm] = smtp_server.inbox.wait_for(1)
        page.goto(confirm.links("/digest/confirm")[0])
        assert page.locator("h1").inner_text() == "Subscription confirmed"
        [row] = json.loads(invoke("digest", "list", "--json").output)
        assert (row["state"], row["hour"], row["timezone"], row["topics"]) == ("active", 6, "Europe/Berlin", ["nato"])

        seed(app, [StoryPlan("NATO foreign ministers meet in Brussels", ["a.example", "b.example"]),
                   StoryPlan("NATO air policing over the Baltics " * 4, ["c.example"])],
             fetched=datetime.now(timezone.utc) - timedelta(hours=1))
        assert invoke("digest", "send", "--now").exit_code == 0
        [_, digest] = smtp_server.inbox.wait_for(2)

        # The HTML part at phone width: nothing wider than the screen, every story link visible.
        phone = browser.new_page(viewport={"width": 375, "height": 800})
        phone.set_content(digest.html)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375
        links = phone.locator("a[href*='/stories/']")
        assert links.count() == 2 and all(links.nth(i).is_visible() for i in range(2))
        phone.screenshot(path=str(tmp_path / "digest-phone.png"), full_page=True)

        page.goto(digest.message["List-Unsubscribe"].strip("<>"))
        assert page.locator("h1").inner_text() == "Unsubscribe?"
        page.click("button[type=submit]")
        assert page.locator("h1").inner_text() == "Unsubscribed"
        assert json.loads(invoke("digest", "list", "--json").output)[0]["state"] == "unsubscribed"
    finally:
        web.stop()
        app.close()
