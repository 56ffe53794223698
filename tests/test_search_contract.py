"""One contract for every search backend: the embedded ones (Tantivy, FTS5) always, Meilisearch when MEILI_URL is set.

The corpus is small and hand-made so every expected result can be read off the fixture below.
"""
from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import date, datetime, timezone

import pytest

from search import (BackendUnavailable, QuerySyntaxError, SearchDocument, SearchQuery, open_backend)
from search.backend import SearchBackend, TimelineBucket

MEILI_SKIP = "MEILI_URL not set: Meilisearch contract tests skipped"


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


def corpus() -> list[SearchDocument]:
    D = SearchDocument
    return [
        D(id="1", url="https://reuters.com/1", title="NATO summit opens in Vilnius",
          text="Leaders discussed Article 5 and collective defence. <script>alert(1)</script> & more.",
          source="reuters.com", language="en", published_at=utc(2026, 11, 10, 23, 59, 59), topics=["nato"],
          story_id="s1"),
        D(id="2", url="https://apnews.com/2", title="Allies debate Article 5 after summit",
          text="The alliance NATO reaffirmed its commitment. Ministers met in Brussels.",
          source="apnews.com", language="en", published_at=utc(2026, 11, 11, 0, 0, 0), topics=["nato"],
          story_id="s1"),
        D(id="3", url="https://kyivindependent.com/3", title="Zelenskyy asks for air defence",
          text="President Zelenskyy met Залужний in Kyiv to discuss aid.", source="kyivindependent.com",
          language="en", published_at=utc(2026, 11, 9, 12), topics=["ukraine-aid"], story_id="s2"),
        D(id="4", url="https://pravda.com.ua/4", title="Залужний дав інтерв'ю",
          text="Генерал Залужний говорив про війну.", source="pravda.com.ua", language="uk",
          published_at=utc(2026, 11, 8, 8), topics=["ukraine-aid"], story_id=None),
        D(id="5", url="https://politico.com/5", title="Trump foreign policy and tariffs",
          text="Trump speech on tariffs and trade partners. Article 6 was not mentioned.",
          source="politico.com", language="en", published_at=utc(2026, 11, 3, 15), topics=["trump-foreign-policy"],
          story_id="s3"),
        D(id="6", url="https://yahoo.com/6", title="Allies debate Article 5 after summit",
          text="The alliance NATO reaffirmed its commitment. Ministers met in Brussels.",
          source="yahoo.com", language="en", published_at=utc(2026, 11, 11, 6), topics=["nato"],
          story_id="s1", is_duplicate=True, duplicate_of="2"),
        D(id="7", url="https://bbc.co.uk/7", title="Zelenskiy visits Washington",
          text="Zelenskiy asked Congress for more aid.", source="bbc.co.uk", language="en",
          published_at=utc(2026, 11, 2, 9), topics=["ukraine-aid", "trump-foreign-policy"], story_id="s4"),
        D(id="8", url="https://dw.com/8", title="NATO-Gipfel ohne Einigung",
          text="Die Verbündeten stritten über Verteidigungsausgaben.", source="dw.com", language="de",
          published_at=utc(2026, 11, 10, 10), topics=["nato"], story_id=None),
        D(id="9", url="https://france24.com/9", title="Élysée statement",
          text="Emmanuel Macron spoke at the Élysée palace.", source="france24.com", language="fr",
          published_at=utc(2026, 11, 1, 18), topics=[], story_id=None),
    ]


ALL_BY_DATE = ["6", "2", "1", "8", "3", "4", "5", "7", "9"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


EMBEDDED = {"tantivy": "tantivy:///{}/index", "fts5": "sqlite:///{}/search.sqlite"}


@pytest.fixture(params=["tantivy", "fts5", pytest.param("meili", marks=pytest.mark.meili)])
def empty_backend(request, tmp_path) -> SearchBackend:
    if request.param in EMBEDDED:
        be = open_backend(EMBEDDED[request.param].format(tmp_path))
        be.setup()
        yield be
        be.close()
        return
    url = os.environ.get("MEILI_URL")
    if not url:
        pytest.skip(MEILI_SKIP)
    uid = f"newsmon_test_{uuid.uuid4().hex[:12]}"
    be = open_backend(url, api_key=os.environ.get("MEILI_MASTER_KEY"), index=uid)
    be.setup()
    yield be
    be.drop()  # type: ignore[attr-defined]
    be.close()


@pytest.fixture
def backend(empty_backend) -> SearchBackend:
    empty_backend.upsert(corpus())
    return empty_backend


def ids(backend: SearchBackend, text: str = "", **kw) -> set[str]:
    res = backend.search(SearchQuery(text=text, limit=100, **kw))
    assert res.total == len(res.hits)
    return {h.id for h in res.hits}


# ---------------------------------------------------------------- text queries researchers write


def test_quoted_phrase(backend):
    assert ids(backend, '"Article 5"') == {"1", "2", "6"}


def test_exclusion_with_minus(backend):
    assert ids(backend, "NATO -summit") == {"8"}


def test_not_operator(backend):
    assert ids(backend, "NATO NOT summit") == {"8"}


def test_or(backend):
    assert ids(backend, "Vilnius OR Brussels") == {"1", "2", "6"}


def test_parentheses_and_implicit_and(backend):
    assert ids(backend, "(Zelenskyy OR Залужний) aid") == {"3"}
    assert ids(backend, "(Zelenskyy OR Залужний) AND aid") == {"3"}


def test_prefix(backend):
    assert ids(backend, "Zelensk*") == {"3", "7"}


def test_exact_word_is_not_prefix_of_other_spelling(backend):
    assert ids(backend, "Zelenskyy") == {"3"}


def test_cyrillic_and_case_folding(backend):
    assert ids(backend, "Залужний") == {"3", "4"}
    assert ids(backend, "ЗАЛУЖНИЙ") == {"3", "4"}


def test_diacritics_are_ignored(backend):
    assert ids(backend, "Elysee") == {"9"}
    assert ids(backend, "Élysée") == {"9"}


def test_pure_exclusion_browses_everything_else(backend):
    assert ids(backend, "-NATO") == {"3", "4", "5", "7", "9"}


def test_empty_query_browses_by_date(backend):
    res = backend.search(SearchQuery(text=""))
    assert res.total == 9
    assert [h.id for h in res.hits] == ALL_BY_DATE


def test_all_stopword_query_is_a_browse_not_an_error(backend):
    res = backend.search(SearchQuery(text="the of and"))
    assert res.total == 9
    assert [h.id for h in res.hits] == ALL_BY_DATE


@pytest.mark.parametrize("text", ['"Article 5', "(NATO OR summit", "NATO )", "NATO OR", "AND NATO",
                                  "NATO AND", "NOT", "NATO -", "()"])
def test_syntax_errors_raise_query_syntax_error(backend, text):
    with pytest.raises(QuerySyntaxError) as e:
        backend.search(SearchQuery(text=text))
    assert "position" in str(e.value)
    with pytest.raises(QuerySyntaxError):
        backend.timeline(SearchQuery(text=text))
    with pytest.raises(QuerySyntaxError):
        backend.facets(SearchQuery(text=text))


def test_engine_syntax_in_user_text_is_just_words(backend):
    assert ids(backend, "NATO* ^Vilnius {summit}") == {"1"}
    assert ids(backend, "NEAR(Vilnius summit)") == set()  # "near" is an ordinary word here


def test_title_ranks_above_text(backend):
    res = backend.search(SearchQuery(text="defence"))
    assert [h.id for h in res.hits] == ["3", "1"]
    assert res.hits[0].score is not None and res.hits[0].score >= res.hits[1].score


# ---------------------------------------------------------------- filters


def test_until_day_includes_last_second_and_since_day_starts_at_midnight(backend):
    assert ids(backend, since=date(2026, 11, 10), until=date(2026, 11, 10)) == {"1", "8"}
    assert ids(backend, since=date(2026, 11, 11)) == {"2", "6"}
    assert ids(backend, until=date(2026, 11, 10)) == {"1", "3", "4", "5", "7", "8", "9"}


def test_datetime_bounds_are_inclusive(backend):
    assert ids(backend, since=utc(2026, 11, 10, 23, 59, 59), until=utc(2026, 11, 11, 0, 0, 0)) == {"1", "2"}


def test_topic_source_language_filters(backend):
    assert ids(backend, topics=["ukraine-aid"]) == {"3", "4", "7"}
    assert ids(backend, topics=["nato", "trump-foreign-policy"]) == {"1", "2", "5", "6", "7", "8"}
    assert ids(backend, sources=["dw.com", "bbc.co.uk"]) == {"7", "8"}
    assert ids(backend, languages=["uk"]) == {"4"}
    assert ids(backend, "NATO", languages=["de"]) == {"8"}
    assert ids(backend, "aid", topics=["ukraine-aid"], since=date(2026, 11, 5)) == {"3"}


def test_exclude_duplicates(backend):
    assert ids(backend, '"Article 5"', include_duplicates=False) == {"1", "2"}


def test_sort_by_date_newest_first(backend):
    res = backend.search(SearchQuery(text="NATO", sort="date"))
    assert [h.id for h in res.hits] == ["6", "2", "1", "8"]
    assert all(h.published_at.tzinfo is not None for h in res.hits)
    assert res.hits[0].published_at == utc(2026, 11, 11, 6)


# ---------------------------------------------------------------- collapse, paging, snippets


def test_collapse_stories_with_counts(backend):
    res = backend.search(SearchQuery(text='"Article 5"', collapse_stories=True))
    assert res.total == 1
    assert len(res.hits) == 1 and res.hits[0].story_id == "s1" and res.hits[0].story_size == 3

    res = backend.search(SearchQuery(collapse_stories=True, sort="date"))
    assert res.total == 7  # s1, s2, s3, s4 and three articles without a story
    sizes = {h.story_id or h.id: h.story_size for h in res.hits}
    assert sizes == {"s1": 3, "s2": 1, "s3": 1, "s4": 1, "4": 1, "8": 1, "9": 1}
    assert res.hits[0].id == "6"  # the story's newest article represents it


def test_pagination_exact_totals(backend):
    page = backend.search(SearchQuery(sort="date", limit=3, offset=3))
    assert page.total == 9 and page.offset == 3 and page.limit == 3
    assert [h.id for h in page.hits] == ALL_BY_DATE[3:6]
    odd = backend.search(SearchQuery(sort="date", limit=4, offset=2))
    assert [h.id for h in odd.hits] == ALL_BY_DATE[2:6]
    beyond = backend.search(SearchQuery(sort="date", limit=3, offset=30))
    assert beyond.total == 9 and beyond.hits == []


def test_snippet_highlights_and_escapes_html(backend):
    res = backend.search(SearchQuery(text="collective"))
    assert [h.id for h in res.hits] == ["1"]
    snip = res.hits[0].snippet
    assert "<mark>collective</mark>" in snip
    assert "<script>" not in snip and "&lt;script&gt;" in snip
    assert "&amp;" in snip


def test_browse_snippet_is_escaped_text(backend):
    hit = next(h for h in backend.search(SearchQuery(limit=100)).hits if h.id == "1")
    assert "<script>" not in hit.snippet and "Leaders discussed" in hit.snippet


def test_hit_fields(backend):
    h = backend.search(SearchQuery(text="Vilnius")).hits[0]
    assert (h.id, h.title, h.url, h.source, h.topics, h.story_id) == (
        "1", "NATO summit opens in Vilnius", "https://reuters.com/1", "reuters.com", ["nato"], "s1")
    assert h.published_at == utc(2026, 11, 10, 23, 59, 59)
    assert h.story_size is None


# ---------------------------------------------------------------- timeline & facets


def test_timeline_by_day_fills_gaps_inside_bounds(backend):
    tl = backend.timeline(SearchQuery(since=date(2026, 11, 8), until=date(2026, 11, 12)), "day")
    assert tl == [TimelineBucket(date(2026, 11, 8), 1), TimelineBucket(date(2026, 11, 9), 1),
                  TimelineBucket(date(2026, 11, 10), 2), TimelineBucket(date(2026, 11, 11), 2),
                  TimelineBucket(date(2026, 11, 12), 0)]


def test_timeline_by_week_starts_on_monday(backend):
    assert backend.timeline(SearchQuery(), "week") == [
        TimelineBucket(date(2026, 10, 26), 1), TimelineBucket(date(2026, 11, 2), 3),
        TimelineBucket(date(2026, 11, 9), 5)]
    assert backend.timeline(SearchQuery(text="NATO"), "week") == [TimelineBucket(date(2026, 11, 9), 4)]


def test_facets(backend):
    f = backend.facets(SearchQuery())
    assert f["topics"] == [("nato", 4), ("ukraine-aid", 3), ("trump-foreign-policy", 2)]
    assert f["language"][0] == ("en", 6)
    assert sorted(f["language"][1:]) == [("de", 1), ("fr", 1), ("uk", 1)]
    assert len(f["source"]) == 9
    f = backend.facets(SearchQuery(text="NATO"), fields=["source"], limit=2)
    assert set(f) == {"source"} and len(f["source"]) == 2 and all(n == 1 for _, n in f["source"])
    with pytest.raises(ValueError):
        backend.facets(SearchQuery(), fields=["author"])


# ---------------------------------------------------------------- writes


def test_upsert_existing_id_replaces(backend):
    doc = corpus()[4]
    doc.title, doc.text = "Trump tariffs revised", "A revised schedule."
    backend.upsert([doc])
    assert backend.count() == 9
    assert ids(backend, "revised") == {"5"}
    assert ids(backend, "speech") == set()


def test_upsert_same_id_twice_in_one_batch_keeps_last(empty_backend):
    a, b = corpus()[0], corpus()[0]
    b.title = "Replaced headline"
    empty_backend.upsert([a, b])
    assert empty_backend.count() == 1
    assert ids(empty_backend, "Replaced") == {"1"}


def test_delete(backend):
    backend.delete(["8", "does-not-exist"])
    assert backend.count() == 8
    assert ids(backend, "NATO") == {"1", "2", "6"}


def test_setup_is_idempotent(backend):
    backend.setup()
    backend.setup()
    assert backend.count() == 9
    assert backend.health() is True


def test_reindex_swaps_and_search_works_during(backend):
    seen_during: list[set[str]] = []
    new_doc = SearchDocument(id="10", url="https://x.org/10", title="Ceasefire talks", text="Talks in Geneva.",
                             source="x.org", language="en", published_at=utc(2026, 11, 20), topics=["russia"])

    def fresh():
        for i, d in enumerate(corpus()[:3] + [new_doc]):
            if i == 2:
                seen_during.append(ids(backend, "Залужний"))
            yield d

    progress: list[int] = []
    assert backend.reindex(fresh(), progress=progress.append) == 4
    assert seen_during == [{"3", "4"}]  # the old index kept answering
    assert progress and progress[-1] == 4
    assert backend.count() == 4
    assert ids(backend, "Залужний") == {"3"}  # doc 4 was not in the new index
    assert ids(backend, "Ceasefire") == {"10"}
    assert backend.facets(SearchQuery())["topics"][0] == ("nato", 2)


def test_large_batch(empty_backend):
    docs = [SearchDocument(id=str(1000 + i), url=f"https://x.org/{i}", title=f"Briefing number {i}",
                           text=f"Daily briefing on sanctions, item {i}.", source="x.org", language="en",
                           published_at=utc(2026, 1, 1 + i % 28, i % 24), topics=["sanctions"])
            for i in range(2500)]
    empty_backend.upsert(docs)
    assert empty_backend.count() == 2500
    res = empty_backend.search(SearchQuery(text="briefing sanctions", limit=50, offset=2400))
    assert res.total == 2500 and len(res.hits) == 50
    assert sum(b.count for b in empty_backend.timeline(SearchQuery(text="sanctions"))) == 2500


# ---------------------------------------------------------------- availability


def test_meili_on_closed_port_raises_backend_unavailable():
    be = open_backend(f"http://127.0.0.1:{_free_port()}", api_key="k")
    assert be.health() is False
    with pytest.raises(BackendUnavailable):
        be.upsert(corpus()[:1])
    with pytest.raises(BackendUnavailable):
        be.search(SearchQuery(text="NATO"))
    with pytest.raises(BackendUnavailable):
        be.setup()
    be.close()


@pytest.mark.parametrize("kind", sorted(EMBEDDED))
def test_embedded_concurrent_readers_and_writer(tmp_path, kind):
    be = open_backend(EMBEDDED[kind].format(tmp_path))
    be.upsert(corpus())
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                res = be.search(SearchQuery(text="NATO OR aid"))
                assert 6 <= res.total <= 26  # corpus: 6 matches, plus up to 20 upserted "aid" articles
                assert len(res.hits) == min(20, res.total)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(20):
        be.upsert([SearchDocument(id=str(100 + i), url="u", title=f"aid {i}", text="aid", source="s.org")])
    be.reindex(corpus())
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert be.count() == 9
    assert be.search(SearchQuery(text="NATO OR aid")).total == 6
    be.close()


@pytest.mark.parametrize("kind", sorted(EMBEDDED))
def test_embedded_writes_during_reindex_are_not_lost(tmp_path, kind):
    be = open_backend(EMBEDDED[kind].format(tmp_path))
    be.upsert(corpus())
    live_new = SearchDocument(id="50", url="u", title="Late breaking ceasefire", text="t", source="s.org")

    def snapshot():  # an older copy of the database, as a reindex reads it
        for i, d in enumerate(corpus()):
            if i == 1:
                fresh = corpus()[4]
                fresh.title, fresh.text = "Trump tariffs revised", "A revised schedule."
                be.upsert([fresh, live_new])  # the pipeline keeps writing meanwhile
                be.delete(["9"])
            yield d

    be.reindex(snapshot())
    assert ids(be, "ceasefire") == {"50"}
    assert ids(be, "revised") == {"5"}  # the stale copy read later did not overwrite the live write
    assert ids(be, "speech") == set()
    assert ids(be, "Elysee") == set()  # deleted during the reindex: not resurrected by the stale copy
    assert be.count() == 9  # 9 - deleted "9" + new "50"
    be.close()


def test_open_backend_selects_by_url(tmp_path):
    from search.fts5 import FTS5Backend
    from search.meili import MeiliBackend
    emb = open_backend(f"sqlite:///{tmp_path}/s.sqlite")
    assert isinstance(emb, FTS5Backend) and isinstance(emb, SearchBackend)
    assert emb.path == f"{tmp_path}/s.sqlite"
    emb.close()
    from search.tantivy_backend import TantivyBackend
    tv = open_backend(f"tantivy:///{tmp_path}/ix")
    assert isinstance(tv, TantivyBackend) and isinstance(tv, SearchBackend)
    assert str(tv.path) == f"{tmp_path}/ix" and (tmp_path / "ix" / "CURRENT").exists()
    tv.close()
    with pytest.raises(ValueError, match="needs a path"):
        open_backend("tantivy://")
    srv = open_backend("http://127.0.0.1:7700", api_key="k", index="articles_test")
    assert isinstance(srv, MeiliBackend) and isinstance(srv, SearchBackend) and srv.uid == "articles_test"
    with pytest.raises(ValueError, match="unsupported search URL"):
        open_backend("postgresql://x/y")
