"""The JSON API under /api/v1 (the search page's parameters), and /healthz."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from monitor.storage.queries import article_detail, feed_health, story_day_counts, story_detail
from monitor.web.params import ParamError, multi_dict, parse_params
from monitor.web.routes_pages import feed_status, parse_id
from monitor.web.service import call, enrich, hit_json, search_chart

router = APIRouter(prefix="/api/v1", tags=["api"])

Q = Query(None, description='Query text: words (all must match), "phrases", OR, NOT/-word, prefix*, (groups).')
TOPIC = Query(None, description="Topic filter; repeat for several (any of them).")
SOURCE = Query(None, description="Source (publication host) filter; repeatable.")
LANGUAGE = Query(None, description="Language code filter (en, de, pt-br); repeatable.")
SINCE = Query(None, description="First UTC day, YYYY-MM-DD (inclusive).")
UNTIL = Query(None, description="Last UTC day, YYYY-MM-DD (inclusive).")
SORT = Query(None, description="relevance (default with a query) or date (newest first).")


def _params(request: Request, *, collapse_default: bool = False, max_limit: int = 1000):
    return parse_params(multi_dict(request.query_params), known_topics=request.app.state.known_topics,
                        max_limit=max_limit, default_collapse=collapse_default)


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "0").lower()
    if raw not in ("0", "1", "true", "false", "yes", "no", ""):
        raise ParamError(name, f"expected 1 or 0, got {raw[:40]!r}")
    return raw in ("1", "true", "yes")


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _chart_json(chart) -> dict:
    return {"interval": chart.interval, "series": chart.series,
            "buckets": [{"start": b.start.isoformat(), "end": b.end.isoformat(), "count": b.count,
                         "by_topic": dict(zip(chart.series, b.by_series))} for b in chart.buckets]}


@router.get("/search", summary="Search articles")
async def api_search(request: Request, q: str | None = Q, topic: list[str] | None = TOPIC,
                     source: list[str] | None = SOURCE, language: list[str] | None = LANGUAGE,
                     since: str | None = SINCE, until: str | None = UNTIL, sort: str | None = SORT,
                     limit: str | None = Query(None, description="Hits per page, 1–1000 (default 20)."),
                     offset: str | None = Query(None, description="Hits to skip (default 0)."),
                     collapse: str | None = Query(None, description="1: one hit per story (story_size says how many matched)."),
                     facets: str | None = Query(None, description="1: add facet counts (source, topics, language)."),
                     timeline: str | None = Query(None, description="1: add the timeline (day/week/month buckets).")):
    """Hits with an exact total; facets and the timeline on request."""
    params = _params(request)
    want_facets, want_timeline = _flag(request, "facets"), _flag(request, "timeline")
    ctx = request.app.state.ctx

    def work():
        res = call(ctx.backend.search, params.query())
        items = enrich(ctx.db, res.hits)
        out = {"total": res.total, "offset": res.offset, "limit": res.limit, "collapsed": params.collapse,
               "hits": [hit_json(i.hit, i) for i in items]}
        if want_facets:
            fac = call(ctx.backend.facets, params.query(collapse=False))
            out["facets"] = {k: [{"value": v, "count": c} for v, c in vals] for k, vals in fac.items()}
        if want_timeline:
            out["timeline"] = _chart_json(search_chart(ctx.backend, params, request.app.state.known_topics, lambda s, e: ""))
        return out

    return await run_in_threadpool(work)


@router.get("/timeline", summary="Matching articles over time")
async def api_timeline(request: Request, q: str | None = Q, topic: list[str] | None = TOPIC,
                       source: list[str] | None = SOURCE, language: list[str] | None = LANGUAGE,
                       since: str | None = SINCE, until: str | None = UNTIL):
    """Buckets per day (per week or month over long ranges) with one count per monitored topic."""
    params = _params(request)
    ctx = request.app.state.ctx

    def work():
        return _chart_json(search_chart(ctx.backend, params, request.app.state.known_topics, lambda s, e: ""))

    return await run_in_threadpool(work)


@router.get("/stories/{story_id}", summary="A story with its articles")
async def api_story(request: Request, story_id: str):
    """Articles in time order with why each is in the story, and the story's own timeline."""
    sid = parse_id(story_id, "story")
    ctx = request.app.state.ctx

    def work():
        with ctx.db.session() as s:
            data = story_detail(s, sid)
            if data is None:
                return None
            data["timeline"] = [{"day": d.isoformat(), "count": c} for d, c in sorted(story_day_counts(s, sid).items())]
            return _jsonable(data)

    data = await run_in_threadpool(work)
    if data is None:
        raise HTTPException(404, f"no such story: {sid}")
    return data


@router.get("/articles/{article_id}", summary="One article")
async def api_article(request: Request, article_id: str):
    """The extracted text, metadata, topics with explanations, its story."""
    aid = parse_id(article_id, "article")
    ctx = request.app.state.ctx

    def work():
        with ctx.db.session() as s:
            return article_detail(s, aid)

    data = await run_in_threadpool(work)
    if data is None:
        raise HTTPException(404, f"no such article: {aid}")
    data.pop("html", None)
    return _jsonable(data)


@router.get("/feeds", summary="Feeds and their health")
async def api_feeds(request: Request):
    """Every feed: last success, last error, failures in a row, articles in the last 24 h and 7 days."""
    ctx = request.app.state.ctx
    now = datetime.now(timezone.utc)

    def work():
        with ctx.db.session() as s:
            rows = feed_health(s, now)
        for f in rows:
            f["status"] = feed_status(f, now)[0]
        return _jsonable(rows)

    return await run_in_threadpool(work)


health_router = APIRouter()


@router.get("/health", include_in_schema=False)
@health_router.get("/healthz", summary="Database and search backend answer", tags=["ops"])
async def healthz(request: Request):
    ctx = request.app.state.ctx

    def check():
        from sqlalchemy import text

        db_ok = backend_ok = False
        try:
            with ctx.db.session() as s:
                s.execute(text("SELECT 1"))
            db_ok = True
        except Exception:  # any failure means "not healthy"; the answer says which part
            pass
        try:
            backend_ok = bool(call(lambda: ctx.backend.health()))
        except Exception:
            pass
        return db_ok, backend_ok

    db_ok, backend_ok = await run_in_threadpool(check)
    ok = db_ok and backend_ok
    return JSONResponse({"status": "ok" if ok else "unavailable", "database": db_ok, "search": backend_ok},
                        status_code=200 if ok else 503)
