"""What the pages and the API show for a search: hits grouped by story, facets, timeline — from the
search backend protocol plus the store (publication names, story sizes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from search.backend import Hit, SearchBackend, SearchResults

from monitor.storage.queries import source_names, story_sources
from monitor.web.params import SearchParams
from monitor.web.timeline import Chart, build_chart, choose_interval

TIMELINE_SERIES = 4


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


def search_chart(backend: SearchBackend, params: SearchParams, facets: dict | None, href) -> Chart:
    """Matches per day (regrouped by week or month over long ranges), one line per top topic.

    The backend is asked for weeks when the range is known to be long: a week bucket of the
    backend (Monday-based) is exactly a bucket of the chart, and 7x fewer to fill."""
    base = params.query(limit=0, offset=0, collapse=False)
    known = choose_interval(params.since, params.until) if params.since and params.until else None
    total = _counts(backend, base, "week" if known == "week" else "day")
    interval = known
    if interval is None and total:
        interval = choose_interval(params.since or min(total), params.until or max(total))
    series: dict[str, dict[date, int]] = {}
    topics = [t for t, _ in (facets or {}).get("topics", [])][:TIMELINE_SERIES]
    if len(topics) > 1 or (topics and not params.topics):
        for t in topics:
            q = params.query(limit=0, offset=0, collapse=False, topics=tuple(dict.fromkeys(params.topics + (t,))))
            series[t] = _counts(backend, q, "week" if interval == "week" else "day")
    return build_chart(total, series, since=params.since, until=params.until, href=href)


def range_href(params: SearchParams, path: str = "/"):
    """Links that narrow the search to one bucket (the query string is built once, not per bar)."""
    from urllib.parse import urlencode

    keep = urlencode([(k, v) for k, v in params.pairs(paging=False) if k not in ("since", "until")]
                     + ([("limit", str(params.limit))] if params.limit != 20 else []))
    prefix = f"{path}?{keep}&" if keep else f"{path}?"
    return lambda s, e: f"{prefix}since={s.isoformat()}&until={e.isoformat()}"


def run_search(backend: SearchBackend, db, params: SearchParams, *, with_facets: bool = True,
               with_timeline: bool = True, timeline_href=None) -> SearchView:
    results = backend.search(params.query())
    facets = backend.facets(params.query(collapse=False), limit=10) if with_facets else {}
    article_total = None
    if params.collapse:
        article_total = backend.search(params.query(collapse=False, limit=0, offset=0)).total
    chart = None
    if with_timeline:
        href = timeline_href or range_href(params)
        chart = search_chart(backend, params, facets, href)
    from monitor.storage.queries import names_of_sources

    with db.session() as s:
        names = names_of_sources(s, [v for v, _ in facets.get("source", [])])
    return SearchView(params, results, enrich(db, results.hits), facets, chart, article_total, names)
