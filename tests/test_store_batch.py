"""`save_articles` (one transaction for many articles) stores what `save_article` one by one stores.

- the dedup + stories sets, with re-sent URLs, better text for a URL seen earlier and exact
  copies under new URLs mixed in, give the same outcomes, rows, URLs, topics, copies and stories
  whether saved one by one, in batches of 13 or all in one batch;
- inside one batch: the second copy of a URL is a duplicate (or an update with better text), a
  same-text copy under another URL folds into the first;
- a batch whose transaction fails, retried article by article without the bad one, leaves the
  engine equal to what the database rebuilds and the stories as a clean run leaves them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from sqlalchemy import func, select

from monitor.clustering.store import Clusterer
from monitor.stages.textnorm import content_hash
from monitor.storage.articles import ArticleCandidate, save_article, save_articles
from monitor.storage.db import Database
from monitor.storage.models import Article, ArticlePage, ArticleTopic, ArticleUrl, OutboxEntry, Story
from tests.dbfixtures import temporary_database
from tests.test_cluster_consistency import _bookkeeping_is_right, _grouping, _loaded, _stream

DATA = Path(__file__).parent / "data"


def _mixed_stream() -> list[ArticleCandidate]:
    """The stream with every kind of repeat the store must recognise, close to the original
    (so that most repeats fall into the same batch as it)."""
    out: list[ArticleCandidate] = []
    for i, cand in enumerate(_stream()):
        cand = dataclasses.replace(cand, topics=["t%d" % (i % 3)], topic_details={"t%d" % (i % 3): (0.5, {"i": i})},
                                   page_html=f"<html>{i}</html>")
        if i % 9 == 4:
            # A feed summary first, then the page: the second is an update of the first.
            summary = cand.text[:120]
            out.append(dataclasses.replace(cand, text=summary, text_source="feed-summary",
                                           content_hash=content_hash(summary), page_html=None, topics=[]))
        out.append(cand)
        if i % 7 == 3:
            out.append(dataclasses.replace(cand, aliases=[cand.canonical_url + "?utm=x"]))  # the same URL again
        if i % 11 == 5:
            copy_url = cand.canonical_url.replace("https://", "https://mirror.")
            out.append(dataclasses.replace(cand, canonical_url=copy_url, url=copy_url))  # an exact copy
    return out


def _state(db: Database) -> dict:
    """Everything stored, with ids replaced by canonical URLs (ids may differ: PostgreSQL sequences have gaps)."""
    with db.session() as s:
        url = dict(s.execute(select(Article.id, Article.canonical_url)).all())
        articles = {
            a.canonical_url: (a.url, a.title, a.text, a.text_source, a.content_hash, a.published_at,
                              url.get(a.duplicate_of), a.duplicate_method, url[a.story_id], a.story_method,
                              a.story_score, a.duplicate_score)
            for a in s.scalars(select(Article))
        }
        urls = sorted((u.url, url[u.article_id], u.relation) for u in s.scalars(select(ArticleUrl)))
        topics = sorted((url[t.article_id], t.topic, t.score, json.dumps(t.explanation)) for t in s.scalars(select(ArticleTopic)))
        pages = sorted((url[p.article_id], p.url, p.html) for p in s.scalars(select(ArticlePage)))
        stories = sorted((url[st.id], st.headline, url[st.headline_article_id], st.article_count, st.source_count,
                          st.first_seen) for st in s.scalars(select(Story)))
        outbox = sorted(url[e.article_id] for e in s.scalars(select(OutboxEntry)))
    return dict(articles=articles, urls=urls, topics=topics, pages=pages, stories=stories, outbox=outbox)


def _save_in(db: Database, clusterer: Clusterer, stream: list[ArticleCandidate], size: int) -> list[str]:
    statuses = []
    for i in range(0, len(stream), size):
        with db.session() as s:
            statuses += [o.status for o in save_articles(s, stream[i : i + size], clusterer)]
    return statuses


def test_batches_store_exactly_what_one_by_one_saving_stores(db, tmp_path):
    stream = _mixed_stream()
    live = Clusterer(db)
    one_by_one = []
    for cand in stream:
        with db.session() as s:
            one_by_one.append(save_article(s, cand, live).status)
    assert {"new", "updated", "duplicate-url", "duplicate-hash"} <= set(one_by_one)
    expected = _state(db)
    # (Not compared with an engine rebuilt from the database: an update replaces the stored text
    # the engine decided on, one by one as in a batch.)
    for size in (13, len(stream)):
        with temporary_database(tmp_path / f"batch{size}") as url:
            other = Database(url)
            clusterer = Clusterer(other)
            assert _save_in(other, clusterer, stream, size) == one_by_one
            assert _state(other) == expected
            if other.dialect == "sqlite":  # same ids (PostgreSQL: the sequences' gaps differ; the state above is by URL)
                assert clusterer.engine.fingerprint() == live.engine.fingerprint()
            _bookkeeping_is_right(other)
            other.close()


def test_inside_one_batch_a_repeated_url_is_a_duplicate_and_the_same_text_a_copy(db):
    text = (DATA / "seed" / "article-3.txt").read_text(encoding="utf-8")
    a = ArticleCandidate(canonical_url="https://news.example/a", url="https://news.example/a", title="Ministers meet",
                         text=text, text_source="page", content_hash=content_hash(text), source="news.example")
    again = dataclasses.replace(a, aliases=["https://news.example/a?ref=rss"])
    copy = dataclasses.replace(a, canonical_url="https://wire.example/b", url="https://wire.example/b", source="wire.example")
    with db.session() as s:
        outcomes = save_articles(s, [a, again, copy], Clusterer(db))
    assert [o.status for o in outcomes] == ["new", "duplicate-url", "duplicate-hash"]
    assert len({o.article_id for o in outcomes}) == 1
    with db.session() as s:
        assert s.scalar(select(func.count(Article.id))) == 1
        assert dict(s.execute(select(ArticleUrl.url, ArticleUrl.relation)).all()) == {
            "https://news.example/a": "canonical", "https://news.example/a?ref=rss": "link",
            "https://wire.example/b": "exact-copy"}
        story = s.scalar(select(Story))
        assert (story.article_count, story.source_count) == (1, 1)
        assert s.scalar(select(func.count(OutboxEntry.id))) == 1


def test_a_failed_batch_retried_one_by_one_leaves_engine_and_database_agreeing(db, tmp_path):
    stream = _stream()
    victim = 31
    with temporary_database(tmp_path / "clean") as url:
        clean = Database(url)
        _save_in(clean, Clusterer(clean), stream[:victim] + stream[victim + 1 :], 1)
        expected = _grouping(clean)
        clean.close()

    clusterer = Clusterer(db)
    _save_in(db, clusterer, stream[:25], 25)
    batch = stream[25:40]
    try:
        with db.session() as s:
            save_articles(s, batch, clusterer)  # the engine decided all 15
            s.flush()
            raise RuntimeError("injected: one article of the batch cannot be stored")
    except RuntimeError:
        pass
    for i, cand in enumerate(batch, start=25):  # what the pipeline does: each in isolation
        if i != victim:
            _save_in(db, clusterer, [cand], 1)
    _save_in(db, clusterer, stream[40:], 20)
    assert _grouping(db) == expected
    assert clusterer.rebuilds == 1
    assert clusterer.engine.fingerprint() == _loaded(db).engine.fingerprint()
    _bookkeeping_is_right(db)


def test_the_pipeline_stores_the_same_in_batches_as_one_article_per_transaction(site_server, newsmon_env, tmp_path,
                                                                                monkeypatch):
    from click.testing import CliRunner

    import monitor.run.pipeline as pipeline
    from monitor.cli import cli

    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n" + "".join(f"  - url: {site_server.base}/{n}\n"
                                          for n in ("natowatch.rss", "ukraineaid.atom", "foreignpolicy.xml")))
    sizes: list[int] = []
    real = pipeline.save_articles

    def recording(session, cands, clusterer=None):
        sizes.append(len(cands))
        return real(session, cands, clusterer)

    monkeypatch.setattr(pipeline, "save_articles", recording)

    def ingest() -> dict:
        result = CliRunner().invoke(cli, ["ingest", "--once", "--feeds", str(feeds), "--json", "--no-progress"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.output.strip().splitlines()[-1])

    first = ingest()
    assert max(sizes) > 1  # batches did form
    batched = Database(newsmon_env["DATABASE_URL"])
    expected = _state(batched)
    batched.close()
    with temporary_database(tmp_path / "single") as url:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("SEARCH_URL", f"tantivy:///{tmp_path / 'single-index'}")
        monkeypatch.setattr(pipeline, "BATCH_MAX", 1)
        sizes.clear()
        assert ingest() == first
        assert set(sizes) == {1}
        single = Database(url)
        state = _state(single)
        single.close()
    # Fetch times differ between the runs; everything else is the same (an article two feeds
    # link to is stored from the same feed's link under any timing).
    assert state == expected
