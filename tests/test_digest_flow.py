"""Digest end to end with real parts: CLI subscribe -> opt-in e-mail (aiosmtpd) -> link against the
running web router (uvicorn) -> digest e-mail -> one-click unsubscribe."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner

from monitor.app import App
from monitor.cli import cli
from tests.digestkit import MAIL_FROM, free_port, StoryPlan, WebServer, digest_environment, seed, smtp_server  # noqa: F401


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def digest_world(newsmon_env, smtp_server, monkeypatch):
    """Mail settings in the environment, the web router running, links pointing at it."""
    port = free_port()
    for k, v in digest_environment(newsmon_env, smtp_server, base_url=f"http://127.0.0.1:{port}").items():
        monkeypatch.setenv(k, v)
    app = App.from_env()
    web = WebServer(app, port).start()
    yield app, web, smtp_server
    web.stop()
    app.close()


def _list():
    result = invoke("digest", "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_subscribe_confirm_digest_and_one_click_unsubscribe(digest_world):
    app, web, smtp = digest_world
    inbox = smtp.inbox

    # Subscribing mails the confirmation at once (no scheduler running).
    result = invoke("digest", "subscribe", "Reader@Example.org", "--query", "NATO", "--hour", "7", "--tz", "Europe/Berlin")
    assert result.exit_code == 0, result.output
    assert "confirmation e-mail sent" in result.output
    [confirm] = inbox.wait_for(1)
    msg = confirm.message
    assert confirm.rcpt_tos == ["Reader@example.org"]
    assert parseaddr(msg["From"])[1] == MAIL_FROM and "Confirm your daily newsmon digest: NATO" == msg["Subject"]
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    [link] = confirm.links("/digest/confirm")
    assert link.startswith(web.base + "/digest/confirm?token=") and link in confirm.html
    assert _list()[0]["state"] == "pending"

    # Nothing but the opt-in goes out before confirmation, even with news and --now.
    story_ids = seed(app, [StoryPlan("NATO summit agrees new spending target", ["a.example", "b.example", "c.example"]),
                           StoryPlan("NATO drills in the Baltic", ["d.example"]),
                           StoryPlan("NATO chief visits Kyiv", ["e.example", "f.example"])],
                     fetched=datetime.now(timezone.utc) - timedelta(hours=2))
    assert "nothing due" in invoke("digest", "send", "--now").output
    assert len(inbox.messages) == 1

    page = httpx.get(link)
    assert page.status_code == 200 and "confirmed" in page.text
    assert _list()[0]["state"] == "active"
    assert "already confirmed" in httpx.get(link).text

    result = invoke("digest", "send", "--now")
    assert result.exit_code == 0 and ": sent" in result.output, result.output
    [_, digest] = inbox.wait_for(2)
    msg = digest.message
    day = datetime.now(timezone.utc).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin")).date()
    assert msg["Subject"] == f"NATO: 3 new stories — {day.day} {day:%b %Y}"
    assert msg["Message-ID"].startswith("<digest.") and msg["Message-ID"].endswith("@newsmon.example.org>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsub = msg["List-Unsubscribe"].strip("<>")
    assert unsub.startswith(web.base + "/digest/unsubscribe?token=") and unsub in digest.text
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    # Grouped by story, biggest first, each linking to its story page; other sources named.
    text, html = digest.text, digest.html
    assert text.index("NATO summit agrees") < text.index("NATO chief visits Kyiv") < text.index("NATO drills")
    for sid in story_ids:
        assert f"{web.base}/stories/{sid}" in text and f'href="{web.base}/stories/{sid}"' in html
    assert "3 articles from 3 sources" in text and "Also: b.example, c.example" in text
    assert "<script" not in html and "x()" not in html and "x()" not in text

    # Exactly once per local day: a second run sends nothing.
    assert ": busy" in invoke("digest", "send", "--now").output
    assert len(inbox.messages) == 2
    assert _list()[0]["last_delivery"]["state"] == "sent"

    # GET only shows a button; the RFC 8058 one-click POST (no cookie, no CSRF) unsubscribes.
    page = httpx.get(unsub)
    assert page.status_code == 200 and "<button" in page.text and _list()[0]["state"] == "active"
    one_click = httpx.post(unsub, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200 and "no longer receive" in one_click.text
    assert _list()[0]["state"] == "unsubscribed"
    seed(app, [StoryPlan("NATO later news", ["g.example"])], fetched=datetime.now(timezone.utc) - timedelta(minutes=5))
    invoke("digest", "send", "--now")
    assert len(inbox.messages) == 2
    # The confirmation link of the cancelled subscription does not revive it.
    assert httpx.get(link).status_code == 400


def test_web_subscribe_form_is_csrf_protected_and_mails_at_once(digest_world):
    app, web, smtp = digest_world
    with httpx.Client(base_url=web.base) as browser:
        page = browser.get("/digest/subscribe", params={"q": "Ukraine aid", "topic": "ukraine"})
        assert page.status_code == 200 and 'name="csrf_token"' in page.text and "newsmon_csrf" in browser.cookies
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        form = {"email": "web@example.org", "q": "Ukraine aid", "topic": "ukraine", "hour": "8", "tz": "Europe/Kyiv"}
        # Without the token, or with a token from another browser: refused, nothing sent.
        assert browser.post("/digest/subscribe", data=form).status_code == 403
        other = httpx.post(web.base + "/digest/subscribe", data={**form, "csrf_token": token})
        assert other.status_code == 403 and "security token" in other.text
        bad = browser.post("/digest/subscribe", data={**form, "csrf_token": token, "email": "not-an-address"})
        assert bad.status_code == 400 and "not a valid e-mail address" in bad.text
        bad_tz = browser.post("/digest/subscribe", data={**form, "csrf_token": token, "tz": "Europe/Atlantis"})
        assert bad_tz.status_code == 400 and "unknown time zone" in bad_tz.text
        assert smtp.inbox.messages == []
        ok = browser.post("/digest/subscribe", data={**form, "csrf_token": token})
        assert ok.status_code == 200 and "Check your inbox" in ok.text
    [confirm] = smtp.inbox.wait_for(1)
    assert confirm.rcpt_tos == ["web@example.org"]
    [row] = _list()
    assert (row["state"], row["query"], row["topics"], row["hour"], row["timezone"]) == (
        "pending", "Ukraine aid", ["ukraine"], 8, "Europe/Kyiv")
    assert httpx.get(confirm.links("/digest/confirm")[0]).status_code == 200
    assert _list()[0]["state"] == "active"


def test_tampered_expired_and_wrong_purpose_tokens_are_refused(digest_world):
    app, web, smtp = digest_world
    from monitor.digest import tokens

    invoke("digest", "subscribe", "t@example.org", "--query", "NATO")
    [confirm] = smtp.inbox.wait_for(1)
    link = confirm.links("/digest/confirm")[0]
    token = parse_qs(urlsplit(link).query)["token"][0]
    body, mac = token.split(".")
    tampered = f"{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{mac}"
    for bad, words in ((tampered, "signature does not match"), ("garbage", "malformed"), ("", "malformed")):
        page = httpx.get(web.base + "/digest/confirm", params={"token": bad})
        assert page.status_code == 400 and words in page.text
    sub_id = _list()[0]["id"]
    expired = tokens.make_token(app.settings.secret, tokens.CONFIRM, sub_id, 1, max_age=60,
                                now=datetime.now().timestamp() - 3600)
    page = httpx.get(web.base + "/digest/confirm", params={"token": expired})
    assert page.status_code == 400 and "expired" in page.text
    # An unsubscribe token is not a confirmation token, and a token signed with another secret is nothing.
    unsub = tokens.make_token(app.settings.secret, tokens.UNSUBSCRIBE, sub_id, 1)
    assert httpx.get(web.base + "/digest/confirm", params={"token": unsub}).status_code == 400
    forged = tokens.make_token("another-secret-0123456789", tokens.UNSUBSCRIBE, sub_id, 1)
    assert httpx.post(web.base + "/digest/unsubscribe", params={"token": forged}).status_code == 400
    assert _list()[0]["state"] == "pending"
    with pytest.raises(tokens.TokenExpired):
        tokens.read_token(app.settings.secret, tokens.CONFIRM, expired)


def test_logged_in_user_saves_a_search_and_admin_sees_paused_subscriptions(newsmon_env, smtp_server, monkeypatch):
    for k, v in digest_environment(newsmon_env, smtp_server).items():
        monkeypatch.setenv(k, v)
    app = App.from_env()
    # The web UI supplies its login; here a header stands in for its session (the router's hook).
    web = WebServer(app, current_user=lambda r: r.headers.get("x-user"),
                    is_admin=lambda r: r.headers.get("x-user") == "admin").start()
    try:
        with httpx.Client(base_url=web.base) as browser:
            page = browser.get("/digest/subscribe", params={"q": "NATO"})
            token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            form = {"q": "NATO summit", "topic": "nato", "name": "Summit watch", "csrf_token": token}
            assert browser.post("/digest/searches", data=form).status_code == 401
            assert browser.post("/digest/searches", data={**form, "csrf_token": "x"}, headers={"x-user": "ana"}).status_code == 403
            bad = browser.post("/digest/searches", data={**form, "name": "a\r\nBcc: b"}, headers={"x-user": "ana"})
            assert bad.status_code == 400 and "one line" in bad.text
            ok = browser.post("/digest/searches", data=form, headers={"x-user": "ana"})
            assert ok.status_code == 201
        searches = json.loads(invoke("digest", "searches", "--json").output)
        assert [(x["id"], x["name"], x["query"], x["owner"]) for x in searches] == [(ok.json()["id"], "Summit watch", "NATO summit", "ana")]
        assert invoke("digest", "subscribe", "p@example.org", "--search-id", str(ok.json()["id"])).exit_code == 0
        assert invoke("digest", "pause", "1", "--reason", "550 mailbox unavailable").exit_code == 0
        assert httpx.get(web.base + "/digest/status", headers={"x-user": "ana"}).status_code == 403
        status = httpx.get(web.base + "/digest/status", headers={"x-user": "admin"}).json()
        assert status["subscriptions"] == {"pending": 0, "active": 0, "paused": 1, "unsubscribed": 0}
        assert status["paused"] == [{"id": 1, "email": "p@example.org", "reason": "550 mailbox unavailable"}]
    finally:
        web.stop()
        app.close()
