"""Storing: one row per article however often it is seen, aliases, better text wins, outbox in the same transaction."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from monitor.clustering.store import Clusterer
from monitor.storage.outbox import drain_outbox, reindex
from monitor.storage.models import Article, ArticleUrl, OutboxEntry, Story
from monitor.storage.articles import ArticleCandidate, save_article
from monitor.stages.textnorm import content_hash
from search import open_backend
from search.query import SearchQuery

TEXT = "\n".join(
    f"Paragraph {i}: NATO defence ministers met in Brussels to discuss the alliance's spending goal and Ukraine."
    for i in range(6)
)


def candidate(url="https://news.example/a", text=TEXT, source="page", **kw) -> ArticleCandidate:
    return ArticleCandidate(
        canonical_url=url, url=kw.pop("fetched", url), title=kw.pop("title", "Ministers meet"), text=text,
        text_source=source, content_hash=content_hash(text), source="news.example",
        published_at=kw.pop("published", datetime(2025, 2, 13, 9, tzinfo=timezone.utc)), topics=kw.pop("topics", ["nato"]), **kw,
    )


def count(db, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_same_article_twice_is_one_row(db):
    with db.session() as s:
        first = save_article(s, candidate())
    with db.session() as s:
        second = save_article(s, candidate(aliases=["https://news.example/a?ref=x"]))
    assert first.status == "new" and second.status == "duplicate-url" and first.article_id == second.article_id
    assert count(db, Article) == 1 and count(db, OutboxEntry) == 1


def test_same_text_under_another_url_is_folded_and_remembered(db):
    with db.session() as s:
        first = save_article(s, candidate())
    with db.session() as s:
        copy = save_article(s, candidate(url="https://mirror.example/copy"))
        assert copy.status == "duplicate-hash" and copy.article_id == first.article_id
        alias = s.get(ArticleUrl, "https://mirror.example/copy")
        assert alias.article_id == first.article_id and alias.relation == "exact-copy"
    assert count(db, Article) == 1


def test_short_texts_are_not_folded_by_hash(db):
    with db.session() as s:
        save_article(s, candidate(url="https://a.example/1", text="Breaking.", source="feed-summary"))
        other = save_article(s, candidate(url="https://b.example/2", text="Breaking.", source="feed-summary"))
    assert other.status == "new" and count(db, Article) == 2


def test_page_text_replaces_a_feed_summary(db):
    with db.session() as s:
        save_article(s, candidate(text="Short summary from the feed.", source="feed-summary"))
    with db.session() as s:
        outcome = save_article(s, candidate())
        assert outcome.status == "updated"
        article = s.get(Article, outcome.article_id)
        assert article.text_source == "page" and article.text == TEXT
    assert count(db, OutboxEntry) == 2  # the update is queued for the index too


def test_the_canonical_page_replaces_a_syndicated_copy_that_pointed_at_it(db):
    with db.session() as s:
        save_article(s, candidate(fetched="https://wire.example/copy", title="UPDATE 1-Ministers meet", text=TEXT + "\n(Wire)"))
    with db.session() as s:
        outcome = save_article(s, candidate())
        article = s.get(Article, outcome.article_id)
        assert outcome.status == "updated" and article.title == "Ministers meet" and article.url == "https://news.example/a"


def test_failed_transaction_stores_nothing_and_queues_nothing(db):
    with pytest.raises(RuntimeError):
        with db.session() as s:
            save_article(s, candidate())
            raise RuntimeError("crash between insert and commit")
    assert count(db, Article) == 0 and count(db, OutboxEntry) == 0 and count(db, ArticleUrl) == 0


def test_clusterer_assigns_story_and_copy(db):
    clusterer = Clusterer(db)
    with db.session() as s:
        original = save_article(s, candidate(), clusterer.assign)
    copy_text = "BRUSSELS (Wire) - " + TEXT.replace("Paragraph 5", "Para 5") + "\nRead more at wire.example"
    with db.session() as s:
        copy = save_article(s, candidate(url="https://wire.example/c", text=copy_text, title="Allies talk money",
                                         published=datetime(2025, 2, 13, 11, tzinfo=timezone.utc)), clusterer.assign)
    with db.session() as s:
        a, b = s.get(Article, original.article_id), s.get(Article, copy.article_id)
        assert a.story_id == a.id and a.duplicate_of is None and a.story_method == "new-story"
        assert b.duplicate_of == a.id and b.story_id == a.story_id and b.duplicate_method
        story = s.get(Story, a.id)
        assert story.article_count == 2 and story.headline == "Ministers meet"


def test_restarted_clusterer_continues_stories(db):
    with db.session() as s:
        first = save_article(s, candidate(), Clusterer(db).assign)
    fresh = Clusterer(db)  # a new process: state comes back from the database
    copy_text = TEXT + "\nCopyright Wire."
    with db.session() as s:
        copy = save_article(s, candidate(url="https://wire.example/c2", text=copy_text,
                                         published=datetime(2025, 2, 13, 12, tzinfo=timezone.utc)), fresh.assign)
        assert s.get(Article, copy.article_id).duplicate_of == first.article_id


def test_outbox_waits_while_the_backend_is_down_then_drains(db, tmp_path):
    with db.session() as s:
        save_article(s, candidate())
        save_article(s, candidate(url="https://news.example/b", text=TEXT.replace("Brussels", "Vilnius")))
    down = open_backend("http://127.0.0.1:9")  # nothing listens on the discard port here
    result = drain_outbox(db, down)
    assert result.error and result.sent == 0 and result.remaining == 2
    with db.session() as s:
        # An outage is not the documents' fault: no attempt is charged, the error is recorded.
        assert all(r.attempts == 0 and r.last_error for r in s.scalars(select(OutboxEntry)))
    up = open_backend(f"sqlite:///{tmp_path / 'search.sqlite'}")
    up.setup()
    result = drain_outbox(db, up)
    assert result.error is None and result.sent == 2 and result.remaining == 0
    assert up.search(SearchQuery(text="Vilnius")).total == 1
    up.close()


def test_reindex_rebuilds_from_the_database(db, tmp_path):
    backend = open_backend(f"sqlite:///{tmp_path / 'search.sqlite'}")
    backend.setup()
    with db.session() as s:
        save_article(s, candidate())
    drain_outbox(db, backend)
    with db.session() as s:
        save_article(s, candidate(url="https://news.example/b", text=TEXT.replace("Brussels", "Vilnius")))
    assert reindex(db, backend) == 2
    assert backend.count() == 2 and count(db, OutboxEntry) == 0
    backend.close()


def test_an_original_arriving_after_its_copy_becomes_the_root(db):
    clusterer = Clusterer(db)
    copy_text = "VILNIUS (Wire) - " + TEXT + "\nRead more at wire.example"
    with db.session() as s:
        copy = save_article(s, candidate(url="https://wire.example/c", text=copy_text, title="Allies talk money",
                                         published=datetime(2025, 2, 13, 15, tzinfo=timezone.utc)), clusterer.assign)
        second_copy = save_article(s, candidate(url="https://paper.example/c", text=copy_text + "\nNewsletter",
                                                published=datetime(2025, 2, 13, 16, tzinfo=timezone.utc)), clusterer.assign)
    with db.session() as s:
        assert s.get(Article, second_copy.article_id).duplicate_of == copy.article_id
        original = save_article(s, candidate(published=datetime(2025, 2, 13, 9, tzinfo=timezone.utc)), clusterer.assign)
    with db.session() as s:
        o, c, c2 = (s.get(Article, x.article_id) for x in (original, copy, second_copy))
        assert o.duplicate_of is None and o.story_method == "original-of-copies"
        assert c.duplicate_of == o.id and c2.duplicate_of == o.id
        assert o.story_id == c.story_id == c2.story_id
        queued = {r.article_id for r in s.scalars(select(OutboxEntry))}
        assert {o.id, c.id, c2.id} <= queued
