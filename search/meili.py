"""Meilisearch backend (official ``meilisearch`` client): settings, document mapping, query translation.

One index (default uid ``articles``). Every write waits for its task; a failed task raises
:class:`SearchBackendError`, an unreachable server :class:`BackendUnavailable`.

Text queries: the shared AST is put into disjunctive normal form. One AND-branch (the usual case)
maps onto a single native search: every word is sent as a one-word phrase (``"nato"``, exact, no
prefix/typo expansion, like the embedded backend), ``word*`` is sent bare as the last word
(Meilisearch prefix-matches only the last query word), exclusions as ``-"word"``, with
``matchingStrategy: all``. Several branches (OR) are each searched with the same filters and
united client-side, exactly, up to ``pagination.maxTotalHits`` matches per branch.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timezone
from typing import Any, Literal

import meilisearch
from meilisearch.errors import (MeilisearchApiError, MeilisearchCommunicationError, MeilisearchError,
                                MeilisearchTimeoutError)

from .backend import (FACET_FIELDS, MARK_CLOSE, MARK_OPEN, BackendUnavailable, Hit, SearchBackendError,
                      SearchResults, TimelineBucket, fill_timeline, plain_snippet, render_snippet,
                      strip_marks, validate_facet_fields)
from .documents import SearchDocument, day_from_epoch, epoch_day, epoch_seconds, last_per_id, week_start_day
from .query import (Node, Not, Phrase, SearchQuery, Term, UnsupportedQuery, time_bounds, to_dnf)

__all__ = ["MeiliBackend", "SETTINGS", "to_meili_document", "meili_id", "article_id_from_meili",
           "build_filter", "conjunction_to_q", "quote_filter_value", "settings_differences"]

MAX_TOTAL_HITS = 100_000
MAX_FACET_VALUES = 10_000   # also bounds a timeline to ~27 years of days
MAX_OR_BRANCHES = 8
CROP_WORDS = 30
UPSERT_CHUNK = 1000
REINDEX_CHUNK = 5000

FILTERABLE = ["id", "topics", "source", "language", "published_at", "published_day", "published_week",
              "story_id", "story_key", "is_duplicate"]

SETTINGS: dict[str, Any] = {
    "searchableAttributes": ["title", "text", "source"],          # rank order: title > text > source
    "displayedAttributes": ["*"],
    "filterableAttributes": FILTERABLE,
    "sortableAttributes": ["published_at"],
    # recency breaks ties between equally relevant articles
    "rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness", "published_at:desc"],
    # collapse is per search ("distinct": "story_key"), so plain searches still list every article
    "distinctAttribute": None,
    "typoTolerance": {"enabled": False},  # researchers' exact names/terms; same matching as FTS5
    "stopWords": [],                      # stopwords are dropped by the shared parser, not in phrases
    "pagination": {"maxTotalHits": MAX_TOTAL_HITS},
    "faceting": {"maxValuesPerFacet": MAX_FACET_VALUES, "sortFacetValuesBy": {"*": "count"}},
}

RETRIEVE = ["article_id", "url", "title", "source", "language", "published_at", "topics", "story_id",
            "story_key", "is_duplicate"]
_ORDERED_LISTS = {"searchableAttributes", "rankingRules"}

_ID_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


# ---------------------------------------------------------------- pure helpers (unit-tested)


def meili_id(article_id: str) -> str:
    """Map an article id onto Meilisearch's id charset ``[A-Za-z0-9_-]`` reversibly.

    Letters, digits and ``-`` pass through (so numeric ids are unchanged); any other byte of the
    UTF-8 encoding, ``_`` included, becomes ``_xx`` (lower-case hex).
    """
    out = []
    for ch in str(article_id):
        if ch in _ID_SAFE:
            out.append(ch)
        else:
            out.extend(f"_{b:02x}" for b in ch.encode("utf-8"))
    result = "".join(out)
    if not result or len(result) > 511:
        raise ValueError(f"article id {article_id!r} cannot be a Meilisearch id (empty or longer than 511 bytes)")
    return result


def article_id_from_meili(mid: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(mid):
        if mid[i] == "_":
            raw.append(int(mid[i + 1:i + 3], 16))
            i += 3
        else:
            raw.extend(mid[i].encode())
            i += 1
    return raw.decode("utf-8")


def to_meili_document(doc: SearchDocument) -> dict[str, Any]:
    """The JSON document sent to Meilisearch: timestamps as epoch seconds, UTC day/week as strings."""
    pub = doc.published_at
    day = epoch_day(pub) if pub else None
    return {
        "id": meili_id(doc.id),
        "article_id": doc.id,
        "url": doc.url,
        "title": strip_marks(doc.title),
        "text": strip_marks(doc.text),
        "source": doc.source,
        "language": doc.language,
        "author": doc.author,
        "published_at": epoch_seconds(pub) if pub else None,
        "published_day": day_from_epoch(day).isoformat() if day is not None else None,
        "published_week": day_from_epoch(week_start_day(day)).isoformat() if day is not None else None,
        "topics": list(doc.topics),
        "story_id": doc.story_id,
        "story_key": doc.story_key,
        "is_duplicate": bool(doc.is_duplicate),
        "duplicate_of": doc.duplicate_of,
    }


def quote_filter_value(value: str) -> str:
    """A double-quoted Meilisearch filter string with ``\\`` and ``"`` escaped."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_filter(q: SearchQuery, extra: Sequence[str] = ()) -> str | None:
    """The Meilisearch filter expression for the query's filters (AND of clauses), or None."""
    clauses: list[str] = []
    for attr, values in (("topics", q.topics), ("source", q.sources), ("language", q.languages)):
        if values:
            clauses.append(f"{attr} IN [{', '.join(quote_filter_value(v) for v in values)}]")
    lo, hi = time_bounds(q)
    if lo is not None:
        clauses.append(f"published_at >= {lo}")
    if hi is not None:
        clauses.append(f"published_at < {hi}")
    if not q.include_duplicates:
        clauses.append("is_duplicate = false")
    clauses.extend(extra)
    return " AND ".join(clauses) if clauses else None


def _q_word(word: str) -> str:
    return '"' + word.replace('"', "") + '"'


def conjunction_to_q(conj: Sequence[Node]) -> str:
    """One AND-branch (terms, phrases, NOT term/phrase) as a Meilisearch ``q`` string."""
    exact: list[str] = []
    negs: list[str] = []
    prefixes: list[str] = []
    for item in conj:
        neg = isinstance(item, Not)
        node = item.child if isinstance(item, Not) else item
        if isinstance(node, Term) and node.prefix:
            if neg:
                raise UnsupportedQuery(f"the Meilisearch backend cannot exclude a prefix (-{node.word}*)")
            prefixes.append(node.word)
            continue
        text = _q_word(" ".join(node.words)) if isinstance(node, Phrase) else _q_word(node.word)  # type: ignore[union-attr]
        (negs if neg else exact).append(("-" + text) if neg else text)
    if len(prefixes) > 1:
        raise UnsupportedQuery("the Meilisearch backend supports one prefix* per AND-group "
                               f"(got {', '.join(p + '*' for p in prefixes)})")
    return " ".join(exact + negs + prefixes)


def query_branches(q: SearchQuery) -> list[str] | None:
    """``q`` strings to search (their union is the result); None means browse (no text constraint)."""
    node = q.parsed()
    if node is None:
        return None
    return [conjunction_to_q(c) for c in to_dnf(node, MAX_OR_BRANCHES)]


def settings_differences(wanted: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Names of settings whose live value differs from ``wanted`` (lists compared as sets unless ordered,
    dicts compared on the keys we set)."""
    diff = []
    for key, want in wanted.items():
        have = actual.get(key)
        if key == "filterableAttributes" and isinstance(have, list):
            have = _flatten_filterable(have)
        if not _same(key, want, have):
            diff.append(key)
    return diff


def _flatten_filterable(items: list[Any]) -> list[str]:
    out: list[str] = []
    for it in items:
        if isinstance(it, dict):  # v1.14+ granular form {"attributePatterns": [...], "features": {...}}
            out.extend(it.get("attributePatterns", []))
        else:
            out.append(it)
    return out


def _same(key: str, want: Any, have: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_same(k, v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list):
            return False
        return want == have if key in _ORDERED_LISTS else sorted(map(str, want)) == sorted(map(str, have))
    return want == have


# ---------------------------------------------------------------- the backend


class MeiliBackend:
    """SearchBackend over a Meilisearch server."""

    def __init__(self, url: str, *, api_key: str | None = None, index: str = "articles",
                 timeout_s: int = 10, task_timeout_s: float = 300.0) -> None:
        self.url = url
        self.uid = index
        self.client = meilisearch.Client(url, api_key, timeout=timeout_s)
        self.task_timeout_ms = int(task_timeout_s * 1000)

    # ------------------------------------------------------------ plumbing

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (MeilisearchCommunicationError, MeilisearchTimeoutError) as e:
            raise BackendUnavailable(f"Meilisearch at {self.url} unavailable during {what}: {e}") from e
        except MeilisearchApiError as e:
            if e.status_code in (502, 503, 504):
                raise BackendUnavailable(f"Meilisearch at {self.url} unavailable during {what}: {e}") from e
            raise SearchBackendError(f"Meilisearch {what} failed: {e.code or e.status_code}: {e.message}") from e
        except MeilisearchError as e:
            raise SearchBackendError(f"Meilisearch {what} failed: {e}") from e

    def _wait(self, task_info: Any, what: str) -> None:
        uid = task_info.task_uid
        with self._errors(f"waiting for {what}"):
            task = self.client.wait_for_task(uid, timeout_in_ms=self.task_timeout_ms, interval_in_ms=50)
        if task.status != "succeeded":
            err = task.error or {}
            raise SearchBackendError(
                f"Meilisearch task {uid} ({what}) {task.status}: {err.get('code', '')} {err.get('message', '')}".strip())

    def _index(self, uid: str | None = None):
        return self.client.index(uid or self.uid)

    # ------------------------------------------------------------ setup

    def setup(self) -> None:
        """Create the index (primary key ``id``) and apply + verify SETTINGS. Idempotent."""
        self._ensure_index(self.uid)

    def _ensure_index(self, uid: str) -> None:
        with self._errors("setup"):
            try:
                info = self.client.get_raw_index(uid)
            except MeilisearchApiError as e:
                if e.code != "index_not_found":
                    raise
                self._wait(self.client.create_index(uid, {"primaryKey": "id"}), f"create index {uid}")
                info = self.client.get_raw_index(uid)
            if info.get("primaryKey") not in (None, "id"):
                raise SearchBackendError(f"index {uid} has primary key {info['primaryKey']!r}, expected 'id'")
            index = self._index(uid)
            diff = settings_differences(SETTINGS, index.get_settings())
            if diff:
                self._wait(index.update_settings(SETTINGS), f"settings of {uid}")
                still = settings_differences(SETTINGS, index.get_settings())
                if still:
                    raise SearchBackendError(f"Meilisearch index {uid}: settings not applied: {', '.join(still)}")

    # ------------------------------------------------------------ writes

    def upsert(self, docs: Sequence[SearchDocument]) -> None:
        """Add or replace documents; returns once every task has succeeded."""
        payload = [to_meili_document(d) for d in last_per_id(docs)]
        self._add(self.uid, payload)

    def _add(self, uid: str, payload: list[dict[str, Any]]) -> None:
        tasks = []
        with self._errors("document upload"):
            for i in range(0, len(payload), UPSERT_CHUNK):
                tasks.append(self._index(uid).add_documents(payload[i:i + UPSERT_CHUNK], primary_key="id"))
        for t in tasks:
            self._wait(t, "document upload")

    def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._errors("delete"):
            ids_filter = f"id IN [{', '.join(quote_filter_value(meili_id(i)) for i in ids)}]"
            task = self._index().delete_documents(filter=ids_filter)  # delete-by-ids is deprecated
        self._wait(task, "delete")

    def reindex(self, docs: Iterable[SearchDocument], *,
                progress: Callable[[int], None] | None = None) -> int:
        """Fill a fresh index, then swap it with the live one (atomic in Meilisearch) and drop the old."""
        self.setup()
        tmp = f"{self.uid}__reindex_{int(time.time())}_{uuid.uuid4().hex[:8]}"
        self._ensure_index(tmp)
        total = 0
        try:
            batch: dict[str, dict[str, Any]] = {}
            for d in docs:
                batch[d.id] = to_meili_document(d)
                if len(batch) >= REINDEX_CHUNK:
                    self._add(tmp, list(batch.values()))
                    total += len(batch)
                    batch = {}
                    if progress:
                        progress(total)
            if batch:
                self._add(tmp, list(batch.values()))
                total += len(batch)
                if progress:
                    progress(total)
            with self._errors("index swap"):
                task = self.client.swap_indexes([{"indexes": [self.uid, tmp]}])
            self._wait(task, "index swap")
        finally:
            with self._errors("drop old index"):
                self._wait(self.client.delete_index(tmp), f"drop {tmp}")
        return total

    def drop(self) -> None:
        """Delete the whole index (tests, operators)."""
        with self._errors("drop"):
            self._wait(self.client.delete_index(self.uid), f"drop {self.uid}")

    # ------------------------------------------------------------ reads

    def _base(self, q: SearchQuery, qtext: str, extra: Sequence[str] = ()) -> dict[str, Any]:
        params: dict[str, Any] = {"indexUid": self.uid, "q": qtext, "matchingStrategy": "all"}
        f = build_filter(q, extra)
        if f:
            params["filter"] = f
        return params

    def _multi(self, queries: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
        with self._errors(what):
            return self.client.multi_search(queries)["results"]

    def search(self, q: SearchQuery) -> SearchResults:
        branches = query_branches(q)
        if branches is not None and not branches:
            return SearchResults(0, [], q.offset, q.limit)
        if branches is None or len(branches) == 1:
            return self._search_native(q, branches[0] if branches else "")
        return self._search_union(q, branches)

    def _display_params(self, qtext: str) -> dict[str, Any]:
        return {
            "attributesToRetrieve": RETRIEVE,
            "attributesToCrop": ["text"], "cropLength": CROP_WORDS, "cropMarker": "…",
            "attributesToHighlight": ["title", "text"] if qtext else [],
            "highlightPreTag": MARK_OPEN, "highlightPostTag": MARK_CLOSE,
            "showRankingScore": True,
        }

    def _search_native(self, q: SearchQuery, qtext: str) -> SearchResults:
        by_date = q.sort == "date" or not _has_positive(qtext)
        params = self._base(q, qtext) | self._display_params(qtext)
        if by_date:
            params["sort"] = ["published_at:desc"]
        skip = 0
        if q.limit and q.offset % q.limit == 0:
            params.update(page=q.offset // q.limit + 1, hitsPerPage=q.limit)
        else:  # exact totals need page mode; fetch from the start and cut
            params.update(page=1, hitsPerPage=q.offset + q.limit)
            skip = q.offset
        queries = [params]
        if q.collapse_stories:
            params["distinct"] = "story_key"
            queries.append(self._base(q, qtext) | {"facets": ["story_key"], "hitsPerPage": 0, "page": 1})
        results = self._multi(queries, "search")
        res = results[0]
        hits_raw = res["hits"][skip:]
        total = int(res.get("totalHits", 0))
        sizes: dict[str, int] = {}
        if q.collapse_stories:
            sizes = results[1].get("facetDistribution", {}).get("story_key", {})
            if len(sizes) < MAX_FACET_VALUES:
                total = len(sizes)
        hits = [self._hit(h, sizes if q.collapse_stories else None, by_date) for h in hits_raw]
        return SearchResults(total=total, hits=hits, offset=q.offset, limit=q.limit)

    def _branch_matches(self, q: SearchQuery, branches: list[str], fields: list[str]) -> list[list[dict[str, Any]]]:
        queries = [self._base(q, b) | {"attributesToRetrieve": fields, "showRankingScore": True,
                                       "page": 1, "hitsPerPage": MAX_TOTAL_HITS,
                                       "attributesToHighlight": [], "attributesToCrop": []}
                   for b in branches]
        out = []
        for b, r in zip(branches, self._multi(queries, "search")):
            if int(r.get("totalHits", 0)) > len(r["hits"]):
                raise UnsupportedQuery(
                    f"OR-branch {b!r} matches more than {MAX_TOTAL_HITS:,} articles; narrow it with filters")
            out.append(r["hits"])
        return out

    def _union(self, q: SearchQuery, branches: list[str], fields: list[str]) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for hits in self._branch_matches(q, branches, fields):
            for h in hits:
                cur = merged.get(h["id"])
                if cur is None or h.get("_rankingScore", 0) > cur.get("_rankingScore", 0):
                    merged[h["id"]] = h
        return merged

    def _search_union(self, q: SearchQuery, branches: list[str]) -> SearchResults:
        merged = self._union(q, branches, ["id", "story_key", "published_at"])
        by_date = q.sort == "date"

        def key(h: dict[str, Any]):
            pub = h.get("published_at")
            pub = pub if pub is not None else float("-inf")
            return (-pub, h["id"]) if by_date else (-h.get("_rankingScore", 0), -pub, h["id"])

        ordered = sorted(merged.values(), key=key)
        sizes: dict[str, int] = {}
        if q.collapse_stories:
            firsts: dict[str, dict[str, Any]] = {}
            for h in ordered:
                sizes[h["story_key"]] = sizes.get(h["story_key"], 0) + 1
                firsts.setdefault(h["story_key"], h)
            ordered = list(firsts.values())
        page = ordered[q.offset:q.offset + q.limit]
        hits = self._format_page(q, branches, page, sizes if q.collapse_stories else None, by_date)
        return SearchResults(total=len(ordered), hits=hits, offset=q.offset, limit=q.limit)

    def _format_page(self, q: SearchQuery, branches: list[str], page: list[dict[str, Any]],
                     sizes: dict[str, int] | None, by_date: bool) -> list[Hit]:
        if not page:
            return []
        ids = [h["id"] for h in page]
        id_filter = f"id IN [{', '.join(quote_filter_value(i) for i in ids)}]"
        queries = [self._base(q, b, [id_filter]) | self._display_params(b) | {"limit": len(ids)}
                   for b in branches]
        formatted: dict[str, dict[str, Any]] = {}
        for r in self._multi(queries, "search"):
            for h in r["hits"]:
                formatted.setdefault(h["id"], h)
        out = []
        for h in page:
            full = dict(formatted.get(h["id"], h))
            full["_rankingScore"] = h.get("_rankingScore")
            out.append(self._hit(full, sizes, by_date))
        return out

    def _hit(self, h: dict[str, Any], sizes: dict[str, int] | None, by_date: bool) -> Hit:
        fmt = h.get("_formatted") or {}
        text = fmt.get("text")
        title_fmt = fmt.get("title")
        pub = h.get("published_at")
        return Hit(
            id=str(h.get("article_id") or article_id_from_meili(h["id"])),
            title=h.get("title", ""), url=h.get("url", ""), source=h.get("source", ""),
            published_at=datetime.fromtimestamp(pub, timezone.utc) if pub is not None else None,
            topics=list(h.get("topics") or []), story_id=h.get("story_id"),
            language=h.get("language"), is_duplicate=bool(h.get("is_duplicate")),
            snippet=render_snippet(text) if text else plain_snippet(h.get("text", "") or ""),
            title_html=render_snippet(title_fmt) if title_fmt and MARK_OPEN in title_fmt else None,
            story_size=(sizes.get(h.get("story_key", ""), 1) if sizes is not None else None),
            score=None if by_date else h.get("_rankingScore"),
        )

    def timeline(self, q: SearchQuery, interval: Literal["day", "week"] = "day") -> list[TimelineBucket]:
        if interval not in ("day", "week"):
            raise ValueError("interval must be 'day' or 'week'")
        field = "published_day" if interval == "day" else "published_week"
        counts = self._counts(q, [field])[field]
        buckets = {date.fromisoformat(k): v for k, v in counts.items()}
        return fill_timeline(buckets, q, interval)

    def facets(self, q: SearchQuery, fields: Sequence[str] = FACET_FIELDS,
               limit: int = 10) -> dict[str, list[tuple[str, int]]]:
        validate_facet_fields(fields)
        counts = self._counts(q, list(fields))
        return {f: sorted(counts[f].items(), key=lambda kv: (-kv[1], kv[0]))[:limit] for f in fields}

    def _counts(self, q: SearchQuery, fields: list[str]) -> dict[str, dict[str, int]]:
        """Exact value counts over the matching articles (facet distribution, or a client-side union)."""
        branches = query_branches(q)
        if branches is not None and not branches:
            return {f: {} for f in fields}
        if branches is None or len(branches) == 1:
            params = self._base(q, branches[0] if branches else "") | {"facets": fields, "page": 1, "hitsPerPage": 0}
            dist = self._multi([params], "facet search")[0].get("facetDistribution", {})
            return {f: dict(dist.get(f, {})) for f in fields}
        merged = self._union(q, branches, ["id", *fields])
        out: dict[str, dict[str, int]] = {f: {} for f in fields}
        for h in merged.values():
            for f in fields:
                vals = h.get(f)
                for v in (vals if isinstance(vals, list) else [vals]):
                    if v is not None:
                        out[f][str(v)] = out[f].get(str(v), 0) + 1
        return out

    def count(self) -> int:
        with self._errors("count"):
            return int(self._index().get_stats().number_of_documents)

    def health(self) -> bool:
        try:
            return bool(self.client.is_healthy())
        except Exception:  # noqa: BLE001 - health never raises
            return False

    def close(self) -> None:
        """Nothing to release: the client holds no persistent connection."""

    def __repr__(self) -> str:
        return f"MeiliBackend({self.url!r}, index={self.uid!r})"


def _has_positive(qtext: str) -> bool:
    """False for browse ('') and for pure exclusions ('-"nato"'): those sort by date."""
    return any(not tok.startswith("-") for tok in _split_q(qtext))


def _split_q(qtext: str) -> list[str]:
    toks, i = [], 0
    while i < len(qtext):
        if qtext[i] == " ":
            i += 1
            continue
        j = i + 1 if qtext[i] == "-" else i
        if j < len(qtext) and qtext[j] == '"':
            end = qtext.index('"', j + 1) + 1
        else:
            end = qtext.find(" ", i)
            end = len(qtext) if end < 0 else end
        toks.append(qtext[i:end])
        i = end
    return toks
