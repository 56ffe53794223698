"""The web app through its ASGI interface, on a database the real pipeline built from the fixture site."""

from __future__ import annotations

import csv
import io
import json
import re

import feedparser
import pytest
from fastapi.testclient import TestClient

from monitor.app import App
from monitor.web import create_app
from tests.websupport import ADMIN_EMAIL, ADMIN_PASSWORD, HOSTILE_TEXT, HOSTILE_TITLE, ingested_home, run_cli


@pytest.fixture(scope="module")
def home(site_server, tmp_path_factory):
    with ingested_home(site_server, tmp_path_factory.mktemp("web")) as (env, feeds):
        yield env


@pytest.fixture
def ctx(home):
    app = App.from_env()
    yield app
    app.close()


@pytest.fixture
def client(ctx):
    with TestClient(create_app(ctx)) as c:
        yield c


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client) -> None:
    page = client.get("/login")
    r = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/admin/feeds",
                                    "csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/feeds"


# ------------------------------------------------------------------ search


def test_search_api_exact_total_and_hits(client):
    r = client.get("/api/v1/search", params={"q": "NATO", "limit": 1000})
    assert r.status_code == 200
    data = r.json()
    assert data["total"] == len(data["hits"]) > 3
    for h in data["hits"]:
        assert "<mark>" in h["snippet"] or "<mark>" in (h["title_html"] or "")
        assert h["source_name"]


def test_collapsed_search_groups_by_story(client):
    flat = client.get("/api/v1/search", params={"limit": 1000}).json()
    grouped = client.get("/api/v1/search", params={"limit": 1000, "collapse": 1}).json()
    stories = {h["story_id"] or f"a{h['id']}" for h in flat["hits"]}
    assert grouped["total"] == len(stories) < flat["total"]
    assert sum(h["story_size"] for h in grouped["hits"]) == flat["total"]
    big = max(grouped["hits"], key=lambda h: h["story_size"])
    assert big["story_size"] > 1 and len(big["story_sources"]) >= 1


def test_facets_counts_match_filtered_totals(client):
    data = client.get("/api/v1/search", params={"facets": 1, "timeline": 1}).json()
    topics = data["facets"]["topics"]
    assert {t["value"] for t in topics} >= {"nato", "ukraine-aid", "trump-foreign-policy"}
    for t in topics:
        filtered = client.get("/api/v1/search", params={"topic": t["value"], "limit": 1}).json()
        assert filtered["total"] == t["count"]
    assert sum(b["count"] for b in data["timeline"]["buckets"]) == data["total"]


def test_timeline_narrowing_matches_search(client):
    tl = client.get("/api/v1/timeline").json()
    busiest = max(tl["buckets"], key=lambda b: b["count"])
    narrowed = client.get("/api/v1/search", params={"since": busiest["start"], "until": busiest["end"]}).json()
    assert narrowed["total"] == busiest["count"]


def test_search_page_shows_stories_facets_timeline(client):
    r = client.get("/", params={"q": "NATO"})
    assert r.status_code == 200
    html = r.text
    assert "stories" in html and "matching articles" in html
    assert "<svg" in html and 'class="bar"' in html and "Counts as a table" in html
    assert "?q=NATO&amp;topic=nato" in html  # facet link adding a filter
    assert re.search(r"\d+ articles from \d+ sources?", html)


@pytest.mark.parametrize("params,needle", [
    ({"since": "2025-13-01"}, "since: expected a date"),
    ({"until": "yesterday"}, "until: expected a date"),
    ({"since": "2025-03-01", "until": "2025-02-01"}, "is after until"),
    ({"limit": "0"}, "limit: must be between"),
    ({"limit": "abc"}, "limit: expected a whole number"),
    ({"limit": "100000"}, "limit: must be between"),
    ({"offset": "-5"}, "offset: expected a whole number"),
    ({"topic": "cooking"}, "unknown topic 'cooking'"),
    ({"sort": "random"}, "sort: expected relevance or date"),
    ({"language": "<en>"}, "language: expected a language code"),
    ({"collapse": "maybe"}, "collapse: expected 1 or 0"),
    ({"q": "x" * 10_240}, "the query is 10240 characters long"),
    ({"q": 'NATO "summit'}, "unbalanced quote"),
    ({"q": "NATO (summit"}, "never closed"),
])
def test_bad_parameters_are_400_with_a_message(client, params, needle):
    for path in ("/api/v1/search", "/api/v1/timeline", "/export.csv", "/feeds/search.atom"):
        if path == "/api/v1/timeline" and set(params) & {"limit", "sort", "collapse"}:
            continue
        if path != "/api/v1/search" and params.get("limit") == "100000":
            continue  # exports and feeds may ask for many rows
        r = client.get(path, params=params)
        assert r.status_code == 400, (path, r.text[:300])
        assert needle in r.json()["error"]["message"]
    page = client.get("/", params=params)
    assert page.status_code == 400 and needle.replace("'", "&#39;") in page.text


def test_syntax_error_shows_position_on_the_search_page(client):
    r = client.get("/", params={"q": "NATO (summit"})
    assert r.status_code == 400
    assert "at position 5" in r.text
    assert 'value="NATO (summit"' in r.text  # the query stays where the researcher typed it
    api = client.get("/api/v1/search", params={"q": "NATO (summit"}).json()
    assert api["error"]["position"] == 5 and api["error"]["param"] == "q"


@pytest.mark.parametrize("path", ["/stories/abc", "/stories/99999999", "/articles/-1", "/articles/99999999999999999999",
                                  "/api/v1/stories/0", "/api/v1/articles/x", "/nowhere"])
def test_unknown_ids_are_404(client, path):
    r = client.get(path)
    assert r.status_code == 404


# ------------------------------------------------------------------ story and article


def test_story_page_folds_copies(client):
    grouped = client.get("/api/v1/search", params={"limit": 1000, "collapse": 1}).json()
    for hit in sorted(grouped["hits"], key=lambda h: -h["story_size"]):
        story = client.get(f"/api/v1/stories/{hit['story_id']}").json()
        copies = [a for a in story["articles"] if a["duplicate_of"]]
        if copies:
            break
    else:
        pytest.fail("the fixture site has syndicated copies; no story shows one")
    published = [a["published"] for a in story["articles"]]
    assert published == sorted(published)
    assert sum(t["count"] for t in story["timeline"]) == len(story["articles"])
    page = client.get(f"/stories/{story['id']}").text
    per_root: dict[int, int] = {}
    for a in copies:
        per_root[a["duplicate_of"]] = per_root.get(a["duplicate_of"], 0) + 1
    for n in per_root.values():
        assert f"and {n} cop{'y' if n == 1 else 'ies'}</summary>" in page
    assert "Why here:" in page


def hostile_article(client) -> dict:
    hits = client.get("/api/v1/search", params={"q": '"hostile description check"'}).json()["hits"]
    assert len(hits) == 1
    return client.get(f"/api/v1/articles/{hits[0]['id']}").json()


def test_script_in_a_feed_description_is_text(client):
    a = hostile_article(client)
    assert a["title"] == HOSTILE_TITLE and HOSTILE_TEXT in a["text"]
    r = client.get(f"/articles/{a['id']}")
    assert r.status_code == 200
    body = r.text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in body
    assert "window.pwned=2" not in body and "onerror" not in body
    assert re.findall(r"<script[^>]*>", body) == ['<script src="/static/newsmon.js" defer>']
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_article_topics_and_story(client):
    a = hostile_article(client)
    assert [t["topic"] for t in a["topics"]] == ["nato"]
    page = client.get(f"/articles/{a['id']}").text
    assert "explanation not recorded" in page or a["topics"][0]["explanation"]


# ------------------------------------------------------------------ export and feeds


def test_csv_export_rows_match_the_api(client):
    api = client.get("/api/v1/search", params={"q": "NATO OR aid", "sort": "date", "limit": 1000}).json()
    r = client.get("/export.csv", params={"q": "NATO OR aid", "sort": "date"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(x["id"]) for x in rows] == [int(h["id"]) for h in api["hits"]]
    by_id = {h["id"]: h for h in api["hits"]}
    for row in rows:
        h = by_id[row["id"]]
        assert row["title"] == h["title"] and row["topics"].split(";") == (h["topics"] or [""])
        assert row["source_name"] == h["source_name"]
        assert int(row["word_count"]) > 0


def test_export_limit_and_offset(client):
    ids = [h["id"] for h in client.get("/api/v1/search", params={"sort": "date", "limit": 1000}).json()["hits"]]
    r = client.get("/export.csv", params={"sort": "date", "limit": 3, "offset": 2})
    assert [row["id"] for row in csv.DictReader(io.StringIO(r.text))] == ids[2:5]


def test_jsonl_export_has_text(client):
    r = client.get("/export.jsonl", params={"topic": "nato"})
    lines = [json.loads(x) for x in r.text.splitlines()]
    total = client.get("/api/v1/search", params={"topic": "nato"}).json()["total"]
    assert len(lines) == total and all(x["text"] and "nato" in x["topics"] for x in lines)


def test_atom_feed_of_a_search(client):
    r = client.get("/feeds/search.atom", params={"q": "NATO"})
    assert r.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(r.content)
    assert not feed.bozo, feed.bozo_exception
    api = client.get("/api/v1/search", params={"q": "NATO", "sort": "date", "limit": 50}).json()
    assert [e.title for e in feed.entries] == [h["title"] for h in api["hits"]]


def test_feeds_page_and_api(client):
    feeds = client.get("/api/v1/feeds").json()
    assert len(feeds) == 4 and all(f["status"] == "ok" for f in feeds)
    assert sum(f["articles_7d"] for f in feeds) == sum(f["articles_total"] for f in feeds) > 0
    page = client.get("/feeds").text
    assert "Hostile Wire" in page and "failures in a row" in page.lower()


def test_healthz_and_docs_need_nothing_external(client):
    assert client.get("/healthz").json() == {"status": "ok", "database": True, "search": True}
    docs = client.get("/docs").text
    assert "/api/v1/search" in docs and "/export.csv" in docs
    assert not re.search(r'(src|href)="(https?:)?//', docs)  # no CDN, no other origin
    spec = client.get("/openapi.json").json()
    assert "/api/v1/search" in spec["paths"]


# ------------------------------------------------------------------ login and admin


def test_admin_needs_login_and_csrf(client):
    r = client.get("/admin/feeds", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fadmin%2Ffeeds")
    page = client.get("/login")
    bad = client.post("/login", data={"email": ADMIN_EMAIL, "password": "wrong password", "csrf_token": csrf_of(page.text)})
    assert bad.status_code == 400 and "wrong email or password" in bad.text
    no_token = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert no_token.status_code == 403
    login(client)
    no_csrf = client.post("/admin/feeds", data={"url": "http://127.0.0.1:9/x.rss"})
    assert no_csrf.status_code == 403


def test_session_cookie_flags(client, ctx):
    page = client.get("/login")
    cookie = page.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    from dataclasses import replace

    secure_ctx = App(replace(ctx.settings, base_url="https://news.example.org"))
    try:
        with TestClient(create_app(secure_ctx), base_url="https://news.example.org") as c:
            r = c.get("/login")
            assert "secure" in r.headers["set-cookie"].lower()
            assert r.headers["strict-transport-security"]
    finally:
        secure_ctx.close()


def test_admin_adds_pauses_and_removes_a_feed(client):
    login(client)
    page = client.get("/admin/feeds").text
    url = "http://127.0.0.1:9/added-by-test.rss"
    r = client.post("/admin/feeds", data={"url": url, "name": "Added", "interval": "60", "csrf_token": csrf_of(page)})
    assert r.status_code == 200 and f"added feed" in r.text and url in r.text
    feed = next(f for f in client.get("/api/v1/feeds").json() if f["url"] == url)
    assert feed["enabled"] and feed["interval_minutes"] == 60
    token = csrf_of(r.text)
    client.post(f"/admin/feeds/{feed['id']}/pause", data={"csrf_token": token})
    assert next(f for f in client.get("/api/v1/feeds").json() if f["url"] == url)["status"] == "paused"
    assert url in client.get("/admin/opml").text
    bad = client.post("/admin/feeds", data={"url": "javascript:alert(1)", "csrf_token": token})
    assert "must be an http(s) URL" in bad.text or "feed URL" in bad.text
    client.post(f"/admin/feeds/{feed['id']}/remove", data={"csrf_token": token})
    assert all(f["url"] != url for f in client.get("/api/v1/feeds").json())
    assert client.post("/admin/feeds/99999/remove", data={"csrf_token": token}).status_code == 404


def test_opml_import_through_the_form(client):
    login(client)
    token = csrf_of(client.get("/admin/feeds").text)
    opml = ('<?xml version="1.0"?><opml version="2.0"><head><title>t</title></head><body>'
            '<outline type="rss" text="From OPML" xmlUrl="http://127.0.0.1:9/from-opml.rss"/></body></opml>')
    r = client.post("/admin/opml", data={"csrf_token": token}, files={"file": ("feeds.opml", opml, "text/xml")})
    assert "imported 1 feed" in r.text
    broken = client.post("/admin/opml", data={"csrf_token": csrf_of(r.text)}, files={"file": ("x.opml", "<opml", "text/xml")})
    assert broken.status_code == 200 and "flash error" in broken.text
    feed = next(f for f in client.get("/api/v1/feeds").json() if f["url"] == "http://127.0.0.1:9/from-opml.rss")
    client.post(f"/admin/feeds/{feed['id']}/remove", data={"csrf_token": csrf_of(broken.text)})


def test_require_login_setting(ctx):
    from dataclasses import replace

    locked = App(replace(ctx.settings, require_login=True))
    try:
        with TestClient(create_app(locked)) as c:
            assert c.get("/", follow_redirects=False).status_code == 303
            assert c.get("/api/v1/search").status_code == 401
            assert c.get("/export.csv").status_code == 401
            assert c.get("/healthz").status_code == 200
            login(c)
            assert c.get("/").status_code == 200 and c.get("/api/v1/search").status_code == 200
    finally:
        locked.close()


def test_users_cli_errors(home):
    code, out = run_cli("users", "add", ADMIN_EMAIL, "--password-stdin", input="another password\n")
    assert code == 2 and "exists already" in out
    code, out = run_cli("users", "add", "new@example.org", "--password-stdin", input="short\n")
    assert code == 2 and "password too short" in out
    code, out = run_cli("users", "add", "not-an-email", "--password-stdin", input="long enough pw\n")
    assert code == 2 and "not an email address" in out
    code, out = run_cli("users", "list", "--json")
    assert code == 0 and [u["email"] for u in json.loads(out)] == [ADMIN_EMAIL]


def test_extra_routers_are_mounted(ctx):
    from fastapi import APIRouter, Depends

    from monitor.web.security import csrf_protect, current_user

    router = APIRouter()

    @router.post("/extra/subscribe", dependencies=[Depends(csrf_protect)])
    def subscribe(user=Depends(current_user)):
        return {"user": user.email if user else None}

    with TestClient(create_app(ctx, extra_routers=[router])) as c:
        assert c.post("/extra/subscribe").status_code == 403
        token = csrf_of(c.get("/login").text)
        assert c.post("/extra/subscribe", data={"csrf_token": token}).json() == {"user": None}


def test_search_backend_down_is_503_and_the_rest_carries_on(ctx, home):
    """A search index that does not answer: search pages say so (503), DB pages keep working."""
    import socket
    from dataclasses import replace

    with socket.socket() as s:  # a port on this machine with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    broken = App(replace(ctx.settings, search_url=dead))
    try:
        with TestClient(create_app(broken)) as c:
            r = c.get("/", params={"q": "NATO"})
            assert r.status_code == 503 and "search index is not answering" in r.text
            assert c.get("/api/v1/search").status_code == 503
            h = c.get("/healthz")
            assert h.status_code == 503 and h.json() == {"status": "unavailable", "database": True, "search": False}
            assert c.get("/feeds").status_code == 200
            assert c.get("/api/v1/stories/1").status_code in (200, 404)
    finally:
        broken.close()


def test_fetch_now_runs_one_feed_in_the_background(client):
    import time

    login(client)
    token = csrf_of(client.get("/admin/feeds").text)
    feed = next(f for f in client.get("/api/v1/feeds").json() if f["url"].endswith("/hostile.rss"))
    r = client.post(f"/admin/feeds/{feed['id']}/fetch", data={"csrf_token": token})
    assert "fetching" in r.text
    for _ in range(200):
        now = next(f for f in client.get("/api/v1/feeds").json() if f["id"] == feed["id"])
        if now["last_fetched_at"] != feed["last_fetched_at"]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("fetch now did not fetch the feed")
    assert now["status"] == "ok" and now["consecutive_failures"] == 0


def test_story_timeline_bar_narrows_the_members(client):
    grouped = client.get("/api/v1/search", params={"limit": 1000, "collapse": 1}).json()
    story = None
    for hit in grouped["hits"]:
        s = client.get(f"/api/v1/stories/{hit['story_id']}").json()
        if len(s["timeline"]) > 1:
            story = s
            break
    if story is None:
        pytest.fail("the fixture site has stories spread over several days; none found")
    day = story["timeline"][0]
    page = client.get(f"/stories/{story['id']}", params={"since": day["day"], "until": day["day"]}).text
    shown = set(re.findall(r'<li class="member">.*?href="/articles/(\d+)"', page, re.S))
    expected = {str(a["id"]) for a in story["articles"]
                if not a["duplicate_of"] and (a["published"] or "")[:10] == day["day"]}
    assert expected and expected <= shown
    assert client.get(f"/stories/{story['id']}", params={"since": "bad"}).status_code == 400


@pytest.mark.parametrize("params", [
    {"q": "\x00"}, {"q": "*"}, {"q": "NOT"}, {"q": "-"}, {"q": "a*"}, {"q": "((((((((((((((((((((((((((((((((((x"},
    {"q": "NATO OR " * 40 + "aid"}, {"source": "%"}, {"topic": ""}, {"language": "EN"}, {"offset": "99999999"},
    {"q": "\u202e\ufeff"}, {"since": "0000-01-01"}, {"until": "9999-12-31"}, {"limit": "1e3"},
])
def test_odd_input_never_500(client, params):
    for path in ("/", "/api/v1/search", "/api/v1/timeline", "/export.jsonl", "/feeds/search.atom"):
        r = client.get(path, params=params)
        assert r.status_code < 500, (path, params, r.text[:300])
        if r.status_code >= 400:
            assert r.status_code == 400


def test_timeline_axis_labels_sit_at_their_values():
    from datetime import date

    from monitor.web.timeline import HEIGHT, TOP, BOTTOM, build_chart

    chart = build_chart({date(2025, 2, 10): 1, date(2025, 2, 11): 3}, {}, since=None, until=None, href=lambda s, e: "")
    plot_h = HEIGHT - TOP - BOTTOM
    for t in chart.yticks:
        assert abs((TOP + plot_h - t.y) / plot_h * 3 - int(t.label)) < 0.01
    bar = chart.bars[0]
    assert abs(bar.h / plot_h - 1 / 3) < 0.01
    assert [b.count for b in chart.buckets] == [1, 3] and chart.interval == "day"


def test_search_page_offers_the_digest_for_this_search(client):
    page = client.get("/", params={"q": "NATO", "topic": "nato"})
    assert page.status_code == 200
    form = re.search(r'<form method="get" action="/digest/subscribe".*?</form>', page.text, re.S)
    assert form, "the search page has no subscribe form"
    assert 'name="q" value="NATO"' in form.group(0) and 'name="topic" value="nato"' in form.group(0)
    # The digest's own form page is served by the same app, prefilled, with its CSRF token, under the CSP.
    sub = client.get("/digest/subscribe", params={"q": "NATO", "topic": "nato", "email": "r@example.org"})
    assert sub.status_code == 200
    assert 'value="r@example.org"' in sub.text and 'value="NATO"' in sub.text and "csrf" in sub.text
    assert "<style" not in sub.text and "style=" not in sub.text  # the CSP allows no inline styles
    assert "style-src 'self'" in sub.headers["content-security-policy"]


def test_digest_links_stay_public_when_login_is_required(home, monkeypatch):
    monkeypatch.setenv("NEWSMON_REQUIRE_LOGIN", "1")
    app_ctx = App.from_env()
    try:
        with TestClient(create_app(app_ctx)) as c:
            assert c.get("/", follow_redirects=False).status_code in (302, 303, 401)
            bad = c.get("/digest/unsubscribe", params={"token": "tampered"}, follow_redirects=False)
            assert bad.status_code == 400 and "not valid" in bad.text
    finally:
        app_ctx.close()
