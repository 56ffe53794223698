"""`newsmon topics test`, `newsmon retag` and tag explanations in storage and `search --json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from monitor.cli import cli
from monitor.config import default_topics, parse_feeds_config
from monitor.run.retag import retag
from monitor.storage.articles import ArticleCandidate, save_article
from monitor.storage.models import Article, ArticleTopic, OutboxEntry, RetagCheckpoint
from monitor.storage.queries import article_topics
from monitor.stages.topics import explain_topics

SITE = Path(__file__).parent / "data" / "site"
NATO_PAGE = "articles/news/2025/02/10/trump-revives-talk-of-nato-exit-as-allies.html"

ARCTIC_FEEDS = """\
feeds: [{url: 'https://a.example/rss'}]
topics:
  arctic:
    label: Arctic
    include_terms: [Arctic, Greenland]
    min_score: 1
"""


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, input=input)


# ---------------------------------------------------------------- topics test


def test_topics_test_on_a_saved_page_uses_the_real_extraction(newsmon_env):
    result = invoke("topics", "test", str(SITE / NATO_PAGE), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["title"].startswith("Trump revives talk of NATO exit")
    assert {"nato", "trump-foreign-policy"} <= set(data["topics"])
    nato = next(m for m in data["matches"] if m["topic"] == "nato")
    assert nato["assigned"] and nato["score"] >= nato["min_score"] and nato["hits"][0]["term"] == "NATO"
    text = invoke("topics", "test", str(SITE / NATO_PAGE)).output
    assert "+ nato" in text and "score" in text


def test_topics_test_fetches_a_url_from_the_local_site(site_server, newsmon_env):
    result = invoke("topics", "test", f"{site_server.base}/{NATO_PAGE}", "--json")
    assert result.exit_code == 0, result.output
    assert "nato" in json.loads(result.output)["topics"]


def test_topics_test_on_jsonl_text_and_stdin(newsmon_env, tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(
        json.dumps({"id": "a", "title": "Rubio presses Panama over canal fees",
                    "text": "Secretary of State Marco Rubio told Panama that Washington wants lower fees for US warships; "
                            "China's role in the ports came up in the talks, the State Department said."}) + "\n"
        + json.dumps({"id": "b", "title": "Doobie Brothers reunite", "text": "The band plays Blossom."}) + "\n"
    )
    lines = invoke("topics", "test", str(items), "--json").output.splitlines()
    got = [json.loads(line) for line in lines]
    assert [g["topics"] for g in got] == [["trump-foreign-policy"], []]
    assert got[0]["source"].endswith("items.jsonl:1 (a)")

    note = tmp_path / "note.txt"
    note.write_text("Allies agree to rotate jets over the Baltics\nDefence ministers of the alliance agreed ...")
    assert invoke("topics", "test", str(note), "--json").exit_code == 0
    piped = invoke("topics", "test", "-", "--title", "Greenland talks", "--feeds", _arctic(tmp_path), "--json",
                   input="Denmark and the US talk about the Arctic.")
    assert "arctic" in json.loads(piped.output)["topics"]


def _arctic(tmp_path: Path) -> str:
    path = tmp_path / "arctic.yaml"
    path.write_text(ARCTIC_FEEDS)
    return str(path)


@pytest.mark.parametrize(
    "content,fragment",
    [
        ('{"title": "ok"}\n{broken\n', "items.jsonl:2: invalid JSON"),
        ('{"title": 5}\n', 'items.jsonl:1: expected an object with a "title"'),
        ("\n", "items.jsonl: empty file"),
    ],
)
def test_topics_test_bad_input_is_one_clear_line(newsmon_env, tmp_path, content, fragment):
    path = tmp_path / "items.jsonl"
    path.write_text(content)
    result = invoke("topics", "test", str(path))
    assert result.exit_code == 2 and fragment in result.output and "Traceback" not in result.output
    missing = invoke("topics", "test", str(tmp_path / "nope.html"))
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_topics_test_with_a_bad_custom_topic_names_file_line_and_key(newsmon_env, tmp_path):
    bad = tmp_path / "feeds.yaml"
    bad.write_text("feeds: [https://a.example/rss]\ntopics:\n  arctic:\n    include_terms: [Arctic]\n    signals:\n"
                   "      - {terms: [navy], near: [Arctic]}\n")
    result = invoke("topics", "test", str(SITE / NATO_PAGE), "--feeds", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:6: topics.arctic.signals[0].window: missing" in result.output


def test_topics_list_shows_builtin_and_custom(newsmon_env, tmp_path):
    out = invoke("topics", "list", "--feeds", _arctic(tmp_path)).output
    assert [line.split()[0] for line in out.splitlines()] == ["nato", "ukraine-aid", "trump-foreign-policy", "arctic"]


# ---------------------------------------------------------------- storage and retag


def _cand(n: int, title: str, text: str, source: str = "feed-summary", rules=None) -> ArticleCandidate:
    matches = explain_topics(title, text, rules or default_topics())
    return ArticleCandidate(
        canonical_url=f"https://news.example/a/{n}", url=f"https://news.example/a/{n}", title=title, text=text,
        text_source=source, content_hash=f"h{n}-{source}", source="news.example",
        topics=[m.name for m in matches], topic_details={m.name: (m.score, m.to_dict()) for m in matches},
    )


ARTICLES = [
    ("NATO allies agree new spending target", "NATO defence ministers agreed that allies spend more; the alliance's secretary general said Article 5 stands."),
    ("Greenland talks in Nuuk", "Officials discussed the Arctic and Greenland's future."),
    ("Doobie Brothers reunite", "The band plays Blossom."),
    ("Arctic shipping routes open", "Arctic ice melts; Greenland ports see ships."),
    ("Farm bill passes", "Farmers welcome the bill."),
]


def _store(db, rules=None):
    with db.session() as s:
        return [save_article(s, _cand(i, t, x, rules=rules), None).article_id for i, (t, x) in enumerate(ARTICLES)]


def test_tags_are_stored_with_score_and_explanation(db):
    ids = _store(db)
    with db.session() as s:
        topics = article_topics(s, ids[0])
        assert article_topics(s, 10**9) == []
    assert [t["topic"] for t in topics] == ["nato"]
    assert topics[0]["score"] > 0 and "NATO" in topics[0]["reason"]
    assert topics[0]["explanation"]["hits"][0]["term"] == "NATO"


def test_retag_applies_new_rules_queues_changes_and_is_done_once(db):
    ids = _store(db)
    rules = parse_feeds_config(ARCTIC_FEEDS, "f.yaml").topics
    with db.session() as s:
        s.query(OutboxEntry).delete()
    res = retag(db, rules, batch_size=2)
    assert res.processed == 5 and res.changed == 2 and res.skipped_newer == 0
    with db.session() as s:
        tagged = {a: sorted(t.topic for t in s.scalars(select(ArticleTopic).where(ArticleTopic.article_id == a))) for a in ids}
        queued = set(s.scalars(select(OutboxEntry.article_id)))
        why = article_topics(s, ids[1])
    assert tagged[ids[1]] == ["arctic"] and tagged[ids[3]] == ["arctic"] and tagged[ids[0]] == ["nato"]
    assert queued == {ids[1], ids[3]}  # only changed tag sets go to the index
    assert why[0]["explanation"]["hits"] and "Greenland" in why[0]["reason"]
    again = retag(db, rules)
    assert again.already_done and again.processed == 0
    assert retag(db, rules, restart=True).processed == 5


def test_a_killed_retag_continues_from_its_checkpoint(db):
    ids = _store(db)
    rules = parse_feeds_config(ARCTIC_FEEDS, "f.yaml").topics

    class Killed(Exception):
        pass

    def die_after_first_batch(n):
        raise Killed

    with pytest.raises(Killed):
        retag(db, rules, batch_size=2, progress=die_after_first_batch)
    with db.session() as s:
        cp = s.scalars(select(RetagCheckpoint)).one()
        assert cp.last_article_id == ids[1] and cp.processed == 2 and cp.finished_at is None
    res = retag(db, rules, batch_size=2)
    assert res.resumed_from == ids[1] and res.processed == 3
    with db.session() as s:
        assert s.scalars(select(RetagCheckpoint)).one().finished_at is not None
        assert s.scalar(select(func.count()).select_from(ArticleTopic).where(ArticleTopic.topic == "arctic")) == 2


def test_retag_never_overwrites_a_newer_ingest_decision(db):
    ids = _store(db)
    rules = parse_feeds_config(ARCTIC_FEEDS, "f.yaml").topics
    newer_text = "The full page: NATO allies met; the alliance's secretary general said Article 5 covers Greenland."

    def ingest_meanwhile(batch_ids):
        if ids[1] in batch_ids:
            # A running ingest stores the full page of article 1, tagged with its own (default) rules.
            with db.session() as s:
                out = save_article(s, _cand(1, ARTICLES[1][0], newer_text, source="page"), None)
                assert out.status == "updated"

    res = retag(db, rules, batch_size=2, after_read=ingest_meanwhile)
    assert res.skipped_newer == 1 and res.processed == 5
    with db.session() as s:
        art = s.get(Article, ids[1])
        assert art.text == newer_text
        assert art.topic_names == ["nato"]  # the ingest's decision, not retag's "arctic"


def test_retag_since_only_touches_recent_articles(db):
    from datetime import datetime, timezone

    ids = _store(db)
    with db.session() as s:
        for i, a in enumerate(ids):
            s.get(Article, a).published_at = datetime(2026, 1, 1 + i, tzinfo=timezone.utc)
    rules = parse_feeds_config(ARCTIC_FEEDS, "f.yaml").topics
    from datetime import date

    res = retag(db, rules, since=date(2026, 1, 4))
    assert res.processed == 2  # articles 3 and 4
    with db.session() as s:
        assert s.get(Article, ids[1]).topic_names == []  # older, untouched
        assert s.get(Article, ids[3]).topic_names == ["arctic"]


def test_retag_command_and_search_json_show_explanations(site_server, newsmon_env, tmp_path, monkeypatch):
    feeds = tmp_path / "site.yaml"
    feeds.write_text("feeds:\n" + "".join(f"  - url: {site_server.base}/{n}\n" for n in ("natowatch.rss", "ukraineaid.atom")))
    assert invoke("ingest", "--once", "--no-progress", "--feeds", str(feeds)).exit_code == 0
    hits = json.loads(invoke("search", '"NATO exit"', "--json").output)["hits"]
    assert hits and "nato" in hits[0]["topics"]
    why = {e["topic"]: e for e in hits[0]["topic_explanations"]}
    assert set(why) == set(hits[0]["topics"]) and why["nato"]["score"] > 0 and why["nato"]["reason"]

    custom = tmp_path / "custom.yaml"
    custom.write_text(feeds.read_text() + "topics:\n  impeachment:\n    include_terms: [impeachment]\n    min_score: 3\n")
    monkeypatch.setenv("NEWSMON_FEEDS", str(custom))
    result = invoke("retag", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["processed"] > 0 and counts["changed"] >= 1
    assert invoke("index").exit_code == 0
    found = json.loads(invoke("search", "--topic", "impeachment", "--json").output)
    assert found["total"] >= 1
    assert any(e["topic"] == "impeachment" and "impeachment" in e["reason"] for e in found["hits"][0]["topic_explanations"])
    assert "already done" in invoke("retag", "--no-progress").output
    assert invoke("retag", "--since", "last week").exit_code == 2
