"""Admin pages behind a login: add, pause, resume, remove feeds, fetch one now, OPML import and export."""

from __future__ import annotations

import logging
import threading

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from monitor.web.routes_pages import parse_id
from monitor.web.security import WebUser, csrf_protect, require_admin
from monitor.web.ui import render

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(require_admin)])
MAX_OPML_BYTES = 2 * 1024 * 1024


def _flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session["flash"] = {"message": message, "kind": kind}


def _back() -> RedirectResponse:
    return RedirectResponse("/admin/feeds", status_code=303)


@router.get("")
async def admin_home():
    return _back()


@router.get("/feeds")
async def admin_feeds(request: Request, user: WebUser = Depends(require_admin)):
    from monitor.storage.queries import feed_row, list_feeds

    ctx = request.app.state.ctx

    def load():
        with ctx.db.session() as s:
            return [feed_row(f) for f in list_feeds(s)]

    feeds = await run_in_threadpool(load)
    flash = request.session.pop("flash", None)
    return render(request, "admin_feeds.html", {"feeds": feeds, "flash": flash, "user": user})


@router.post("/feeds", dependencies=[Depends(csrf_protect)])
async def add_feed(request: Request, url: str = Form(""), name: str = Form(""), interval: str = Form("30")):
    from monitor.config import FeedConfig
    from monitor.run.feedsync import sync_feeds
    from monitor.stages.urls import InvalidURLError, canonicalize_url

    url = url.strip()
    try:
        canonicalize_url(url)
        if not url.startswith(("http://", "https://")):
            raise InvalidURLError("must be an http(s) URL")
    except InvalidURLError as exc:
        _flash(request, f"feed URL {url[:200]!r}: {exc}", "error")
        return _back()
    if not interval.isdigit() or not 1 <= int(interval) <= 10080:
        _flash(request, "interval: whole minutes between 1 and 10080", "error")
        return _back()
    cfg = FeedConfig(url=url, name=name.strip()[:300] or None, interval_minutes=int(interval))
    (fid,) = await run_in_threadpool(sync_feeds, request.app.state.ctx.db, [cfg])
    _flash(request, f"added feed {fid}: {url}")
    return _back()


def _set_enabled(ctx, fid: int, enabled: bool):
    from monitor.storage.models import Feed

    with ctx.db.session() as s:
        feed = s.get(Feed, fid)
        if feed is None:
            return None
        feed.enabled = enabled
        return feed.url


@router.post("/feeds/{feed_id}/pause", dependencies=[Depends(csrf_protect)])
async def pause_feed(request: Request, feed_id: str):
    url = await run_in_threadpool(_set_enabled, request.app.state.ctx, parse_id(feed_id, "feed"), False)
    if url is None:
        raise HTTPException(404, f"no such feed: {feed_id}")
    _flash(request, f"paused {url}")
    return _back()


@router.post("/feeds/{feed_id}/resume", dependencies=[Depends(csrf_protect)])
async def resume_feed(request: Request, feed_id: str):
    url = await run_in_threadpool(_set_enabled, request.app.state.ctx, parse_id(feed_id, "feed"), True)
    if url is None:
        raise HTTPException(404, f"no such feed: {feed_id}")
    _flash(request, f"resumed {url}")
    return _back()


@router.post("/feeds/{feed_id}/remove", dependencies=[Depends(csrf_protect)])
async def remove_feed(request: Request, feed_id: str):
    from monitor.storage.models import Feed

    fid = parse_id(feed_id, "feed")
    ctx = request.app.state.ctx

    def work():
        with ctx.db.session() as s:
            feed = s.get(Feed, fid)
            if feed is None:
                return None
            s.delete(feed)
            return feed.url

    url = await run_in_threadpool(work)
    if url is None:
        raise HTTPException(404, f"no such feed: {feed_id}")
    _flash(request, f"removed {url} (its stored articles stay)")
    return _back()


def fetch_feed_now(ctx, fid: int) -> None:
    """One pass over one feed, in the background; the feeds page shows how it went."""
    from monitor.run.ingest import drain_index
    from monitor.run.pipeline import Pipeline
    from monitor.run.scheduling import claim_due_feeds

    try:
        pipeline = Pipeline(ctx.db, ctx.settings, ctx.feeds_config, workers=1)
        try:
            with ctx.db.session() as s:
                claimed = claim_due_feeds(s, pipeline.worker_id, limit=1, feed_ids=[fid], force=True)
            pipeline.run(claimed)
        finally:
            pipeline.close()
        drain_index(ctx)
    except Exception:  # a background fetch must never take the web process down
        log.exception("fetch of feed %s failed", fid)


@router.post("/feeds/{feed_id}/fetch", dependencies=[Depends(csrf_protect)])
async def fetch_now(request: Request, feed_id: str):
    from monitor.storage.models import Feed

    fid = parse_id(feed_id, "feed")
    ctx = request.app.state.ctx

    def exists():
        with ctx.db.session() as s:
            f = s.get(Feed, fid)
            return f.url if f else None

    url = await run_in_threadpool(exists)
    if url is None:
        raise HTTPException(404, f"no such feed: {feed_id}")
    threading.Thread(target=fetch_feed_now, args=(ctx, fid), daemon=True, name=f"fetch-{fid}").start()
    _flash(request, f"fetching {url} now: reload the feeds page in a moment to see the result")
    return _back()


@router.post("/opml", dependencies=[Depends(csrf_protect)])
async def import_opml_upload(request: Request, file: UploadFile = File(...)):
    from monitor.run.feedsync import sync_feeds
    from monitor.stages.opml import OpmlError, import_opml

    data = await file.read(MAX_OPML_BYTES + 1)
    if len(data) > MAX_OPML_BYTES:
        _flash(request, "OPML file larger than 2 MB", "error")
        return _back()
    try:
        configs = import_opml(data)
    except OpmlError as exc:
        _flash(request, f"{file.filename or 'OPML'}: {exc}", "error")
        return _back()
    ids = await run_in_threadpool(sync_feeds, request.app.state.ctx.db, configs)
    _flash(request, f"imported {len(ids)} feed(s) from {file.filename or 'the OPML file'}")
    return _back()


@router.get("/opml")
async def export_opml_download(request: Request):
    from monitor.config import FeedConfig
    from monitor.stages.opml import export_opml
    from monitor.storage.queries import list_feeds

    ctx = request.app.state.ctx

    def work():
        with ctx.db.session() as s:
            return export_opml([FeedConfig(url=f.url, name=f.name or f.title, interval_minutes=f.interval_minutes)
                                for f in list_feeds(s)])

    text = await run_in_threadpool(work)
    return Response(text, media_type="text/x-opml; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="newsmon-feeds.opml"'})
