"""The HTML pages: search (front page), story, article, feeds, query help, API reference."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import partial

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException

from search.query import QuerySyntaxError

from monitor.storage.queries import article_detail, feed_health, story_day_counts, story_detail
from monitor.web.params import SearchParams, day_param, multi_dict, parse_params
from monitor.web.service import run_search
from monitor.web.timeline import build_chart
from monitor.web.ui import render

router = APIRouter(include_in_schema=False)
MAX_ID = 2**63 - 1


def parse_id(raw: str, what: str) -> int:
    if not raw.isdigit() or int(raw) > MAX_ID:
        raise HTTPException(404, f"no such {what}: {raw[:40]}")
    return int(raw)


@router.get("/")
async def search_page(request: Request):
    ctx = request.app.state.ctx
    args = multi_dict(request.query_params)
    try:
        params = parse_params(args, known_topics=request.app.state.known_topics)
    except QuerySyntaxError as exc:
        typed = (args.get("q") or [""])[-1]
        return render(request, "search.html", {
            "params": SearchParams(q=typed), "view": None, "syntax_error": exc, "typed": typed,
            "error_pos": exc.position, "topics": request.app.state.known_topics}, status=400)
    view = await run_in_threadpool(partial(run_search, topics=request.app.state.known_topics), ctx.backend, ctx.db, params)
    return render(request, "search.html", {"params": params, "view": view, "syntax_error": None,
                                           "topics": request.app.state.known_topics})


@router.get("/favicon.ico")
async def favicon():
    return RedirectResponse("/static/favicon.svg", status_code=301)


@router.get("/help")
async def help_page(request: Request):
    return render(request, "help.html", {"topics": request.app.state.known_topics})


def _story_view(ctx, story_id: int, since=None, until=None):
    with ctx.db.session() as s:
        data = story_detail(s, story_id)
        if data is None:
            return None
        days = story_day_counts(s, story_id)
    by_id = {a["id"]: a for a in data["articles"]}
    originals, copies = [], {}
    for a in data["articles"]:
        root = a["duplicate_of"]
        while root in by_id and by_id[root]["duplicate_of"] in by_id:  # fold chains under the first original
            root = by_id[root]["duplicate_of"]
        if root in by_id:
            copies.setdefault(root, []).append(a)
        else:
            originals.append(a)
    from monitor.storage.queries import source_names

    with ctx.db.session() as s:
        names = source_names(s, list(by_id))
    for a in data["articles"]:
        a["source_name"] = names.get(a["id"], a["source"])
    data["source_count"] = len({a["source_name"] for a in data["articles"]}) or data["source_count"]
    chart = build_chart(days, {}, since=None, until=None,
                        href=lambda st, en: f"/stories/{story_id}?since={st.isoformat()}&until={en.isoformat()}")
    if since or until:  # a bar was clicked: show the articles of that period only

        def inside(a) -> bool:
            day = a["published"].date() if a["published"] else None
            return day is not None and (since is None or day >= since) and (until is None or day <= until)

        originals = [a for a in originals if inside(a) or any(inside(c) for c in copies.get(a["id"], []))]
    return {"story": data, "originals": originals, "copies": copies, "chart": chart, "since": since, "until": until}


@router.get("/stories/{story_id}")
async def story_page(request: Request, story_id: str):
    sid = parse_id(story_id, "story")
    args = multi_dict(request.query_params)
    since, until = day_param(args, "since"), day_param(args, "until")
    view = await run_in_threadpool(_story_view, request.app.state.ctx, sid, since, until)
    if view is None:
        raise HTTPException(404, f"no such story: {sid}")
    return render(request, "story.html", view)


@router.get("/articles/{article_id}")
async def article_page(request: Request, article_id: str):
    aid = parse_id(article_id, "article")
    ctx = request.app.state.ctx

    def load():
        with ctx.db.session() as s:
            return article_detail(s, aid)

    article = await run_in_threadpool(load)
    if article is None:
        raise HTTPException(404, f"no such article: {aid}")
    return render(request, "article.html", {"a": article})


def feed_status(f: dict, now: datetime) -> tuple[str, str]:
    """(css class, words) for a feed's health: failing, silent, paused, new or ok."""
    if not f["enabled"]:
        return "paused", "paused"
    if f["consecutive_failures"]:
        return "failing", f"failing: {f['consecutive_failures']} failure(s) in a row"
    if f["last_success_at"] is None:
        return "new", "not fetched yet"
    if f["articles_7d"] == 0 and f["articles_total"] > 0:
        return "silent", "silent: no new articles for 7 days"
    if f["articles_total"] == 0:
        return "silent", "silent: no articles yet"
    return "ok", "ok"


@router.get("/feeds")
async def feeds_page(request: Request):
    ctx = request.app.state.ctx
    now = datetime.now(timezone.utc)

    def load():
        with ctx.db.session() as s:
            return feed_health(s, now)

    rows = await run_in_threadpool(load)
    for f in rows:
        f["status_class"], f["status_words"] = feed_status(f, now)
    rank = {"failing": 0, "silent": 1, "new": 2, "paused": 3, "ok": 4}
    rows.sort(key=lambda f: (rank[f["status_class"]], (f["name"] or f["title"] or f["url"]).casefold()))
    return render(request, "feeds.html", {"feeds": rows})


@router.get("/docs")
async def api_docs(request: Request):
    spec = request.app.openapi()
    ops = []
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            ops.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                        "description": op.get("description", ""), "parameters": op.get("parameters", [])})
    return render(request, "docs.html", {"ops": ops, "spec": spec})
