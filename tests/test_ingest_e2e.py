"""End to end: ingest the fixture news site over real HTTP, then check what a correct pipeline concludes.

`tests/data/site/expected.json` says, per feed item, which page it is, its topics, its story
and which item holds the original when it is a copy. These tests run the real CLI against the
real local server and inspect the real database.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from monitor.cli import cli
from monitor.storage.db import Database
from monitor.storage.models import Article, ArticleUrl, Feed, FetchAttempt, OutboxEntry, Story
from monitor.stages.urls import canonicalize_url
from tests.dbfixtures import app_environment, temporary_database

SITE = Path(__file__).parent / "data" / "site"
EXPECTED = json.loads((SITE / "expected.json").read_text())
ITEMS = {item["id"]: item for item in EXPECTED["items"]}


def write_feeds(tmp_path: Path, base: str, names=("natowatch.rss", "ukraineaid.atom", "foreignpolicy.xml")) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + "".join(f"  - url: {base}/{n}\n" for n in names))
    return path


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def ingested(site_server, tmp_path_factory):
    """One real ingest of the fixture site, shared by the read-only checks below."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    with temporary_database(tmp_path) as url, pytest.MonkeyPatch.context() as mp:
        for key, value in app_environment(tmp_path, url).items():
            mp.setenv(key, value)
        feeds = write_feeds(tmp_path, site_server.base)
        code, out = run_cli("ingest", "--once", "--feeds", str(feeds), "--json", "--no-progress")
        assert code == 0, out
        summary = json.loads(out.strip().splitlines()[-1])
        db = Database(url)
        yield summary, db, feeds, site_server
        db.close()


def article_for(session, item: dict, base: str) -> Article | None:
    link = canonicalize_url(item["link"].replace("{BASE}", base))
    article_id = session.scalar(select(ArticleUrl.article_id).where(ArticleUrl.url == link))
    return session.get(Article, article_id) if article_id else None


def test_first_pass_summary(ingested):
    summary, *_ = ingested
    assert summary["feeds_ok"] == 3 and summary["feeds_failed"] == 0
    assert summary["entries"] == len(ITEMS)
    assert summary["pages_failed"] == 1  # the 404 item, kept on its feed text
    assert summary["new_articles"] > 0
    assert summary["index"]["error"] is None and summary["index"]["remaining"] == 0


def test_every_item_is_stored_under_its_link(ingested):
    _, db, _, server = ingested
    with db.session() as s:
        for item in ITEMS.values():
            assert article_for(s, item, server.base) is not None, item["id"]


def test_same_page_and_rel_canonical_copies_are_one_row(ingested):
    _, db, _, server = ingested
    with db.session() as s:
        for item in ITEMS.values():
            if not item["copy_of"] or not item.get("canonical"):
                continue
            original = ITEMS[item["copy_of"]]
            if item["canonical"] == original.get("canonical"):
                assert article_for(s, item, server.base).id == article_for(s, original, server.base).id, item["id"]
        # fp-02 is the same text as fp-01 on another outlet, self-canonical: an exact copy, stored once.
        assert article_for(s, ITEMS["fp-02"], server.base).id == article_for(s, ITEMS["fp-01"], server.base).id
        n_rows = s.scalar(select(func.count(Article.id)))
        n_canonicals = len({i.get("canonical") or i["id"] for i in ITEMS.values()})
        assert n_rows == n_canonicals - 1  # minus the exact copy folded by text hash


def test_near_copies_point_at_their_original(ingested):
    _, db, _, server = ingested
    with db.session() as s:
        for item in ITEMS.values():
            if not item["copy_of"]:
                continue
            original = article_for(s, ITEMS[item["copy_of"]], server.base)
            copy = article_for(s, item, server.base)
            assert copy.id == original.id or copy.duplicate_of == original.id, item["id"]


def test_stories_match_the_expected_grouping(ingested):
    _, db, _, server = ingested
    with db.session() as s:
        story_of = {iid: article_for(s, item, server.base).story_id for iid, item in ITEMS.items()}
        by_expected: dict[str, set] = {}
        for iid, item in ITEMS.items():
            by_expected.setdefault(item["story"], set()).add(story_of[iid])
        for label, ids in by_expected.items():
            assert len(ids) == 1, f"story {label} split into {ids}"
        distinct = [next(iter(ids)) for ids in by_expected.values()]
        assert len(set(distinct)) == len(distinct), "two different stories merged"
        seed = s.get(Story, story_of["nw-01"])
        rows = {article_for(s, i, server.base).id for i in ITEMS.values() if i["story"] == ITEMS["nw-01"]["story"]}
        assert seed.article_count == len(rows) >= 4
        assert seed.source_count == 1  # every outlet of the fixture site is served from 127.0.0.1


def test_topics_are_tagged(ingested):
    _, db, _, server = ingested
    with db.session() as s:
        for iid, item in ITEMS.items():
            topics = set(article_for(s, item, server.base).topic_names)
            assert set(item["topics"]) <= topics, iid
            assert topics <= set(item["topics"]) | set(item.get("topics_acceptable", [])), iid


def test_failures_are_recorded(ingested):
    _, db, _, server = ingested
    missing = server.base + EXPECTED["missing"][0]
    with db.session() as s:
        attempt = s.scalar(select(FetchAttempt).where(FetchAttempt.url.like(missing + "%")))
        assert attempt is not None and attempt.outcome == "error" and attempt.http_status == 404
        kept = article_for(s, ITEMS["nw-08"], server.base)
        assert kept.text_source == "feed-summary" and kept.title


def test_redirect_is_followed_and_remembered(ingested):
    _, db, _, server = ingested
    with db.session() as s:
        article = article_for(s, ITEMS["fp-01"], server.base)
        assert article.canonical_url.endswith(EXPECTED["redirects"]["/go/fp-settlements"])
        assert "settlements" in article.text and article.text_source == "page"


def test_search_finds_seed_articles_under_their_topics(ingested):
    *_, server = ingested
    for iid in ("nw-01", "nw-02", "ua-01"):
        item = ITEMS[iid]
        for topic in item["topics"]:
            code, out = run_cli("search", "NATO OR Ukraine OR Trump", "--topic", topic, "--limit", "50", "--json")
            assert code == 0, out
            data = json.loads(out)
            assert data["total"] == len(data["hits"]) or data["total"] > len(data["hits"])
            titles = {h["title"] for h in data["hits"]}
            assert item["title"] in titles, (iid, topic)
            hit = next(h for h in data["hits"] if h["title"] == item["title"])
            assert set(hit) >= {"id", "title", "url", "source", "published", "topics", "snippet"}
            assert topic in hit["topics"] and hit["published"].startswith(item["published"][:10])


def test_second_pass_adds_nothing(ingested):
    summary, db, feeds, _ = ingested
    with db.session() as s:
        before = s.scalar(select(func.count(Article.id)))
        urls_before = s.scalar(select(func.count()).select_from(ArticleUrl))
    code, out = run_cli("ingest", "--once", "--feeds", str(feeds), "--json", "--no-progress")
    assert code == 0, out
    again = json.loads(out.strip().splitlines()[-1])
    assert again["new_articles"] == 0 and again["updated_articles"] == 0
    assert again["entries_known"] + again.get("entries_skipped_unchanged", 0) >= again["entries"] - 1
    with db.session() as s:
        assert s.scalar(select(func.count(Article.id))) == before
        assert s.scalar(select(func.count()).select_from(ArticleUrl)) == urls_before
        assert s.scalar(select(func.count(OutboxEntry.id))) == 0


def test_status_reports_feed_health(ingested):
    code, out = run_cli("status", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["articles"] > 0 and data["index"]["outbox_pending"] == 0
    assert len(data["feeds"]) == 3 and all(f["last_status"] == "ok" for f in data["feeds"])


@pytest.mark.parametrize("seed", [1, 2])
def test_stories_do_not_depend_on_the_order_pages_arrive_in(seed, site_server_fresh, tmp_path_factory, ingested):
    """Pages answered after random delays (another arrival order) give the same grouping."""
    _, db, _, server = ingested
    with db.session() as s:
        reference = _grouping(s, server.base)
    site_server_fresh.jitter = 0.15
    site_server_fresh.jitter_rng.seed(seed)
    tmp_path = tmp_path_factory.mktemp(f"jitter{seed}")
    with temporary_database(tmp_path) as url, pytest.MonkeyPatch.context() as mp:
        for key, value in app_environment(tmp_path, url).items():
            mp.setenv(key, value)
        code, out = run_cli("ingest", "--once", "--feeds", str(write_feeds(tmp_path, site_server_fresh.base)), "--no-progress")
        assert code == 0, out
        other = Database(url)
        with other.session() as s:
            assert _grouping(s, site_server_fresh.base) == reference
        other.close()


def _grouping(session, base: str) -> tuple:
    """Stories and copies as sets of feed item ids (independent of row ids)."""
    story_of, copy_of = {}, {}
    for iid, item in ITEMS.items():
        article = article_for(session, item, base)
        story_of[iid] = article.story_id
        copy_of[iid] = article.id if article.duplicate_of is None else article.duplicate_of
    stories = sorted(sorted(i for i in ITEMS if story_of[i] == sid) for sid in set(story_of.values()))
    copies = sorted(sorted(i for i in ITEMS if copy_of[i] == root) for root in set(copy_of.values()))
    return stories, copies
