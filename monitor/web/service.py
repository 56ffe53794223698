"""What the pages and the API show for a search: hits grouped by story, facets, timeline — from the
search backend protocol plus the store (publication names, story sizes)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

from search.backend import Hit, SearchBackend, SearchResults

from monitor.storage.queries import source_names, story_sources
from monitor.web.params import SearchParams
from monitor.web.timeline import Chart, build_chart, choose_interval

TIMELINE_SERIES = 5


@dataclass
class ResultItem:
    hit: Hit
    source_name: str
    story_articles: int | None = None   # articles in the whole story
    story_source_count: int | None = None
    other_sources: list[str] = field(default_factory=list)


@dataclass
class SearchView:
    params: SearchParams
    results: SearchResults
    items: list[ResultItem]
    facets: dict[str, list[tuple[str, int]]]
    chart: Chart | None
    article_total: int | None = None  # matching articles when results are collapsed into stories
    source_names: dict[str, str] = field(default_factory=dict)  # facet host -> publication name


def hit_json(hit: Hit, item: ResultItem | None = None) -> dict:
    out = {"id": hit.id, "title": hit.title, "url": hit.url, "source": hit.source,
           "published": hit.published_at.isoformat() if hit.published_at else None, "topics": hit.topics,
           "title_html": hit.title_html, "snippet": hit.snippet, "story_id": hit.story_id, "story_size": hit.story_size, "score": hit.score,
           "language": hit.language, "is_duplicate": hit.is_duplicate}
    if item is not None:
        out["source_name"] = item.source_name
        if item.story_articles is not None:
            out["story_articles"] = item.story_articles
            out["story_sources"] = [item.source_name] + item.other_sources
    return out


def enrich(db, hits: list[Hit]) -> list[ResultItem]:
    """Publication names and story sizes for the hits on one page (two queries)."""
    ids = [int(h.id) for h in hits if h.id.isdigit()]
    sids = [int(h.story_id) for h in hits if h.story_id and h.story_id.isdigit()]
    with db.session() as s:
        names = source_names(s, ids)
        stories = story_sources(s, sids)
    items = []
    for h in hits:
        name = names.get(int(h.id), h.source) if h.id.isdigit() else h.source
        item = ResultItem(h, name)
        info = stories.get(int(h.story_id)) if h.story_id and h.story_id.isdigit() else None
        if info:
            item.story_articles = info["article_count"]
            item.story_source_count = len(info["sources"]) or info["source_count"]
            item.other_sources = [x for x in info["sources"] if x != name]
        items.append(item)
    return items


def _counts(backend: SearchBackend, q, interval: str) -> dict[date, int]:
    return {b.start: b.count for b in backend.timeline(q, interval) if b.count}


# The backend calls of one page are independent reads: run them side by side (SQLite releases the
# GIL while it works, and each thread has its own connection in the embedded backend).
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="newsmon-search")


def call(fn, *args, **kwargs):
    """Run one backend call on the pool: at most 8 threads (hence 8 index connections) touch the backend."""
    return _POOL.submit(fn, *args, **kwargs).result()


_NAMES: dict[str, tuple[float, str | None]] = {}
NAMES_TTL = 600.0


def publication_names(db, hosts: list[str]) -> dict[str, str]:
    """Host -> publication name, remembered for ten minutes (names change rarely; lookups add up)."""
    import time

    from monitor.storage.queries import names_of_sources

    now = time.monotonic()
    missing = [h for h in hosts if h not in _NAMES or now - _NAMES[h][0] > NAMES_TTL]
    if missing:
        with db.session() as s:
            found = names_of_sources(s, missing)
        for h in missing:
            _NAMES[h] = (now, found.get(h))
        if len(_NAMES) > 10_000:
            _NAMES.clear()
    return {h: _NAMES[h][1] for h in hosts if h in _NAMES and _NAMES[h][1]}


def _series_topics(params: SearchParams, topics: list[str]) -> list[str]:
    """The monitored topics drawn as lines; none when the search is already narrowed to one."""
    if len(params.topics) == 1:
        return []
    return list(topics)[:TIMELINE_SERIES]


def _chart_interval(params: SearchParams) -> str | None:
    return choose_interval(params.since, params.until) if params.since and params.until else None


def search_chart(backend: SearchBackend, params: SearchParams, topics: list[str], href,
                 total: dict[date, int] | None = None, series: dict[str, dict[date, int]] | None = None) -> Chart:
    """Matches per day (regrouped by week or month over long ranges), one line per monitored topic.

    The backend is asked for weeks when the range is known to be long: a week bucket of the
    backend (Monday-based) is exactly a bucket of the chart, and 7x fewer to fill."""
    if total is None or series is None:
        total, series = timeline_counts(backend, params, topics)
    return build_chart(total, series, since=params.since, until=params.until, href=href)


def _topic_query(params: SearchParams, topic: str):
    return params.query(limit=0, offset=0, collapse=False, topics=tuple(dict.fromkeys(params.topics + (topic,))))


def timeline_counts(backend: SearchBackend, params: SearchParams, topics: list[str]):
    interval = "week" if _chart_interval(params) == "week" else "day"
    base = params.query(limit=0, offset=0, collapse=False)
    jobs = {t: _POOL.submit(_counts, backend, _topic_query(params, t), interval) for t in _series_topics(params, topics)}
    total = call(_counts, backend, base, interval)
    return total, {t: f.result() for t, f in jobs.items()}


def range_href(params: SearchParams, path: str = "/"):
    """Links that narrow the search to one bucket (the query string is built once, not per bar)."""
    from urllib.parse import urlencode

    keep = urlencode([(k, v) for k, v in params.pairs(paging=False) if k not in ("since", "until")]
                     + ([("limit", str(params.limit))] if params.limit != 20 else []))
    prefix = f"{path}?{keep}&" if keep else f"{path}?"
    return lambda s, e: f"{prefix}since={s.isoformat()}&until={e.isoformat()}"


def run_search(backend: SearchBackend, db, params: SearchParams, *, topics: list[str] = (),
               with_facets: bool = True, with_timeline: bool = True, timeline_href=None) -> SearchView:
    """Everything the search page shows; the backend calls run in parallel."""
    interval = "week" if _chart_interval(params) == "week" else "day"
    f_results = _POOL.submit(backend.search, params.query())
    f_facets = _POOL.submit(backend.facets, params.query(collapse=False), limit=10) if with_facets else None
    f_count = (_POOL.submit(backend.search, params.query(collapse=False, limit=0, offset=0))
               if params.collapse else None)
    f_series = ({t: _POOL.submit(_counts, backend, _topic_query(params, t), interval)
                 for t in _series_topics(params, topics)} if with_timeline else {})
    f_total = (_POOL.submit(_counts, backend, params.query(limit=0, offset=0, collapse=False), interval)
               if with_timeline else None)
    results = f_results.result()
    items = enrich(db, results.hits)
    facets = f_facets.result() if f_facets else {}
    names = publication_names(db, [v for v, _ in facets.get("source", [])])
    total = f_total.result() if f_total else None
    chart = None
    if with_timeline:
        series = {t: f.result() for t, f in f_series.items()}
        chart = search_chart(backend, params, topics, timeline_href or range_href(params), total, series)
    article_total = f_count.result().total if f_count else None
    return SearchView(params, results, items, facets, chart, article_total, names)
