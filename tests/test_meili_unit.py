"""Unit tests for the Meilisearch backend pieces that need no server: id escaping, document mapping,
filter and q building, settings verification, task handling (with a fake client), timeline filling."""
from __future__ import annotations

import re
import socket
from datetime import date, datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from meilisearch.errors import MeilisearchApiError

from search import BackendUnavailable, SearchBackendError, SearchDocument, SearchQuery, UnsupportedQuery
from search.backend import MARK_CLOSE, MARK_OPEN, TimelineBucket
from search.meili import (SETTINGS, MeiliBackend, _has_positive, article_id_from_meili, build_filter,
                          conjunction_to_q, fill_timeline, meili_id, query_branches, quote_filter_value,
                          settings_differences, to_meili_document)
from search.query import Not, Phrase, Term


def doc(**kw: Any) -> SearchDocument:
    base = dict(id="42", url="https://x.org/42", title="NATO summit", text="Leaders met.", source="x.org",
                language="en", published_at=datetime(2026, 11, 10, 23, 59, 59, tzinfo=timezone.utc),
                topics=["nato"], story_id="7")
    base.update(kw)
    return SearchDocument(**base)


# ---------------------------------------------------------------- ids and documents


@pytest.mark.parametrize("aid", ["123", "a-b", "with_underscore", "ünïcode", "a/b c", "x" * 100])
def test_meili_id_is_in_charset_and_reversible(aid):
    mid = meili_id(aid)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,511}", mid)
    assert article_id_from_meili(mid) == aid


def test_numeric_ids_pass_unchanged_and_escaping_is_injective():
    assert meili_id("123") == "123"
    assert meili_id("a_5f") != meili_id("a_")  # '_' itself is escaped
    with pytest.raises(ValueError):
        meili_id("x" * 600)


def test_document_conversion_uses_numbers_for_time_and_utc_day_and_week():
    d = to_meili_document(doc(title=f"a {MARK_OPEN}b{MARK_CLOSE}", is_duplicate=True, duplicate_of="41"))
    assert d["id"] == "42" and d["article_id"] == "42"
    assert d["published_at"] == 1794355199 and isinstance(d["published_at"], int)
    assert d["published_day"] == "2026-11-10"
    assert d["published_week"] == "2026-11-09"  # Monday
    assert d["story_key"] == "s-7" and d["story_id"] == "7"
    assert d["is_duplicate"] is True and d["duplicate_of"] == "41"
    assert d["title"] == "a b"  # our highlight markers cannot be smuggled in
    assert d["topics"] == ["nato"]


def test_document_without_date_or_story():
    d = to_meili_document(doc(published_at=None, story_id=None))
    assert d["published_at"] is None and d["published_day"] is None and d["published_week"] is None
    assert d["story_key"] == "a-42"


def test_local_time_is_converted_to_utc_day():
    from datetime import timedelta
    kyiv = timezone(timedelta(hours=2))
    d = to_meili_document(doc(published_at=datetime(2026, 11, 11, 1, 30, tzinfo=kyiv)))
    assert d["published_day"] == "2026-11-10"


# ---------------------------------------------------------------- filters


def test_filter_from_query_model():
    q = SearchQuery(topics=["nato", "ukraine-aid"], sources=["dw.com"], languages=["de"],
                    since=date(2026, 11, 10), until=date(2026, 11, 10), include_duplicates=False)
    assert build_filter(q) == (
        'topics IN ["nato", "ukraine-aid"] AND source IN ["dw.com"] AND language IN ["de"] '
        "AND published_at >= 1794268800 AND published_at < 1794355200 AND is_duplicate = false")


def test_filter_until_datetime_is_inclusive_to_the_second():
    q = SearchQuery(until=datetime(2026, 11, 10, 23, 59, 59, tzinfo=timezone.utc))
    assert build_filter(q) == "published_at < 1794355200"


def test_no_filter_is_none():
    assert build_filter(SearchQuery()) is None


def test_filter_values_are_escaped():
    assert quote_filter_value('a"b\\c') == '"a\\"b\\\\c"'
    f = build_filter(SearchQuery(sources=['evil" OR source = "x']))
    assert f == 'source IN ["evil\\" OR source = \\"x"]'


# ---------------------------------------------------------------- q strings


def test_conjunction_words_are_exact_phrases_prefix_last_negations_kept():
    conj = [Term("zelensk", prefix=True), Term("nato"), Phrase(("article", "5")), Not(Term("summit")),
            Not(Phrase(("air", "defence")))]
    assert conjunction_to_q(conj) == '"nato" "article 5" -"summit" -"air defence" zelensk'


def test_two_prefixes_or_negated_prefix_are_unsupported():
    with pytest.raises(UnsupportedQuery):
        conjunction_to_q([Term("zel", prefix=True), Term("zal", prefix=True)])
    with pytest.raises(UnsupportedQuery):
        conjunction_to_q([Term("nato"), Not(Term("sum", prefix=True))])


def test_query_branches():
    assert query_branches(SearchQuery(text="")) is None
    assert query_branches(SearchQuery(text="the of and")) is None
    assert query_branches(SearchQuery(text="NATO -summit")) == ['"nato" -"summit"']
    assert query_branches(SearchQuery(text="(Zelenskyy OR Залужний) aid")) == [
        '"zelenskyy" "aid"', '"залужний" "aid"']
    assert query_branches(SearchQuery(text="NOT (a1 OR b1)")) == ['-"a1" -"b1"']
    assert query_branches(SearchQuery(text="nato NOT nato")) == []  # contradiction: nothing matches


def test_too_many_or_branches_is_unsupported():
    with pytest.raises(UnsupportedQuery):
        query_branches(SearchQuery(text="(a1 OR a2 OR a3) (b1 OR b2 OR b3)"))


def test_pure_exclusion_sorts_by_date():
    assert _has_positive('"nato" -"summit"') is True
    assert _has_positive('-"summit"') is False
    assert _has_positive('-"air defence" -"x"') is False
    assert _has_positive("") is False
    assert _has_positive("zelensk") is True


# ---------------------------------------------------------------- settings


def test_settings_cover_the_contract():
    assert SETTINGS["searchableAttributes"] == ["title", "text", "source"]
    for f in ("topics", "source", "language", "published_at", "published_day", "story_id", "is_duplicate"):
        assert f in SETTINGS["filterableAttributes"]
    assert SETTINGS["sortableAttributes"] == ["published_at"]
    assert SETTINGS["rankingRules"][-1] == "published_at:desc"
    assert SETTINGS["pagination"]["maxTotalHits"] >= 10_000


def test_settings_differences():
    live = {k: (list(v) if isinstance(v, list) else v) for k, v in SETTINGS.items()}
    live["filterableAttributes"] = list(reversed(live["filterableAttributes"]))  # order irrelevant
    live["typoTolerance"] = {"enabled": False, "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9}}
    live["faceting"] = {"maxValuesPerFacet": 10000, "sortFacetValuesBy": {"*": "count"}}
    assert settings_differences(SETTINGS, live) == []
    live["rankingRules"] = list(reversed(live["rankingRules"]))  # order matters here
    live["pagination"] = {"maxTotalHits": 1000}
    assert settings_differences(SETTINGS, live) == ["rankingRules", "pagination"]


def test_settings_differences_understands_granular_filterable_form():
    live = dict(SETTINGS)
    live["filterableAttributes"] = [{"attributePatterns": SETTINGS["filterableAttributes"],
                                     "features": {"facetSearch": True}}]
    assert settings_differences(SETTINGS, live) == []


# ---------------------------------------------------------------- task handling with a fake client


class FakeIndex:
    def __init__(self, client: "FakeClient", uid: str) -> None:
        self.client, self.uid = client, uid

    def get_settings(self):
        return self.client.settings.setdefault(self.uid, {"rankingRules": ["words"]})

    def update_settings(self, body):
        self.client.calls.append(("update_settings", self.uid))
        if not self.client.ignore_settings:
            self.client.settings[self.uid] = dict(body)
        return self.client.task()

    def add_documents(self, docs, primary_key=None):
        self.client.calls.append(("add_documents", self.uid, len(docs)))
        return self.client.task(fail=self.client.fail_adds)

    def delete_documents(self, ids=None, *, filter=None):
        self.client.calls.append(("delete_documents", self.uid, filter))
        return self.client.task()


class FakeClient:
    def __init__(self) -> None:
        self.indexes: dict[str, dict] = {}
        self.settings: dict[str, dict] = {}
        self.calls: list[tuple] = []
        self.tasks: dict[int, SimpleNamespace] = {}
        self.fail_adds = False
        self.ignore_settings = False

    def task(self, fail: bool = False):
        uid = len(self.tasks) + 1
        self.tasks[uid] = SimpleNamespace(
            status="failed" if fail else "succeeded",
            error={"code": "invalid_document_id", "message": "bad id"} if fail else None)
        return SimpleNamespace(task_uid=uid)

    def wait_for_task(self, uid, timeout_in_ms=0, interval_in_ms=0):
        return self.tasks[uid]

    def get_raw_index(self, uid):
        if uid not in self.indexes:
            resp = requests.Response()
            resp.status_code = 404
            resp._content = b'{"code":"index_not_found","message":"Index not found"}'
            raise MeilisearchApiError("not found", resp)
        return self.indexes[uid]

    def create_index(self, uid, options):
        self.calls.append(("create_index", uid))
        self.indexes[uid] = {"uid": uid, "primaryKey": options["primaryKey"]}
        return self.task()

    def delete_index(self, uid):
        self.calls.append(("delete_index", uid))
        self.indexes.pop(uid, None)
        return self.task()

    def swap_indexes(self, params):
        self.calls.append(("swap_indexes", params[0]["indexes"]))
        return self.task()

    def index(self, uid):
        return FakeIndex(self, uid)


@pytest.fixture
def fake():
    be = MeiliBackend("http://meili.invalid:7700", index="articles")
    be.client = FakeClient()  # type: ignore[assignment]
    return be


def test_setup_creates_index_applies_and_verifies_settings_once(fake):
    fake.setup()
    fake.setup()
    calls = fake.client.calls
    assert calls.count(("create_index", "articles")) == 1
    assert calls.count(("update_settings", "articles")) == 1  # second setup finds nothing to change


def test_setup_raises_when_settings_do_not_stick(fake):
    fake.client.ignore_settings = True
    with pytest.raises(SearchBackendError, match="settings not applied"):
        fake.setup()


def test_setup_refuses_an_index_with_another_primary_key(fake):
    fake.client.indexes["articles"] = {"uid": "articles", "primaryKey": "url"}
    with pytest.raises(SearchBackendError, match="primary key"):
        fake.setup()


def test_failed_task_is_an_error_with_its_code(fake):
    fake.client.fail_adds = True
    with pytest.raises(SearchBackendError, match="invalid_document_id") as e:
        fake.upsert([doc()])
    assert not isinstance(e.value, BackendUnavailable)


def test_upsert_dedups_batch_and_chunks(fake):
    docs = [doc(id=str(i)) for i in range(2500)] + [doc(id="1", title="again")]
    fake.upsert(docs)
    assert [c[2] for c in fake.client.calls if c[0] == "add_documents"] == [1000, 1000, 500]


def test_delete_escapes_ids(fake):
    fake.delete(["12", "a_b"])
    assert ("delete_documents", "articles", 'id IN ["12", "a_5fb"]') in fake.client.calls


def test_reindex_fills_a_fresh_index_swaps_and_drops_it(fake):
    seen: list[int] = []
    n = fake.reindex((doc(id=str(i)) for i in range(12_000)), progress=seen.append)
    assert n == 12_000 and seen == [5000, 10000, 12000]
    calls = fake.client.calls
    swap = next(c for c in calls if c[0] == "swap_indexes")
    live, tmp = swap[1]
    assert live == "articles" and tmp.startswith("articles__reindex_")
    assert calls[-1] == ("delete_index", tmp)
    assert all(c[1] == tmp for c in calls if c[0] == "add_documents")


def test_reindex_failure_drops_the_half_built_index(fake):
    fake.setup()
    fake.client.fail_adds = True
    with pytest.raises(SearchBackendError):
        fake.reindex([doc()])
    assert not any(c[0] == "swap_indexes" for c in fake.client.calls)
    assert fake.client.calls[-1][0] == "delete_index" and "__reindex_" in fake.client.calls[-1][1]


def test_server_errors_map_to_unavailable_and_client_errors_to_backend_error(fake):
    def raise_status(status):
        def f(*a, **k):
            resp = requests.Response()
            resp.status_code = status
            resp._content = b'{"code":"x","message":"boom"}'
            raise MeilisearchApiError("boom", resp)
        return f
    fake.client.multi_search = raise_status(503)
    with pytest.raises(BackendUnavailable):
        fake.search(SearchQuery(text="nato"))
    fake.client.multi_search = raise_status(400)
    with pytest.raises(SearchBackendError) as e:
        fake.search(SearchQuery(text="nato"))
    assert not isinstance(e.value, BackendUnavailable)


def test_closed_port_is_unavailable_not_a_crash():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    be = MeiliBackend(f"http://127.0.0.1:{port}", api_key="k")
    assert be.health() is False
    for call in (lambda: be.upsert([doc()]), lambda: be.delete(["1"]), be.count, be.setup,
                 lambda: be.timeline(SearchQuery()), lambda: be.facets(SearchQuery())):
        with pytest.raises(BackendUnavailable):
            call()


# ---------------------------------------------------------------- timeline shape


def test_fill_timeline_days_and_weeks():
    counts = {date(2026, 11, 8): 1, date(2026, 11, 10): 2}
    assert fill_timeline(counts, SearchQuery(), "day") == [
        TimelineBucket(date(2026, 11, 8), 1), TimelineBucket(date(2026, 11, 9), 0),
        TimelineBucket(date(2026, 11, 10), 2)]
    q = SearchQuery(since=date(2026, 11, 1), until=date(2026, 11, 12))
    assert fill_timeline({date(2026, 11, 2): 3, date(2026, 11, 9): 4}, q, "week") == [
        TimelineBucket(date(2026, 10, 26), 0), TimelineBucket(date(2026, 11, 2), 3),
        TimelineBucket(date(2026, 11, 9), 4)]
    assert fill_timeline({}, SearchQuery(), "day") == []
