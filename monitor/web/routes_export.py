"""Streamed export of any search (CSV, JSONL) and every search as an Atom feed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from search.backend import strip_marks

from monitor.storage.queries import export_rows, source_names
from monitor.web.service import call
from monitor.web.params import SearchParams, int_param, multi_dict, parse_params

router = APIRouter(tags=["export"])
BATCH = 500
CSV_COLUMNS = ["id", "published", "source", "source_name", "title", "url", "topics", "story_id", "story_size",
               "language", "author", "word_count", "duplicate_of"]
ATOM_ENTRIES = 50


MAX_EXPORT_ROWS = 100_000_000


def export_params(request: Request) -> tuple[SearchParams, int | None]:
    """The search's parameters and the most rows wanted (``limit``; default all). Every matching
    article is a row (not one per story) unless collapse=1 is asked for; ``offset`` skips rows."""
    args = multi_dict(request.query_params)
    max_rows = None
    if args.get("limit"):
        max_rows = int_param(args, "limit", 0, 1, MAX_EXPORT_ROWS)
    args.pop("limit", None)
    return parse_params(args, known_topics=request.app.state.known_topics, default_collapse=False), max_rows


def iter_export(ctx, params: SearchParams, *, with_text: bool, max_rows: int | None = None) -> Iterator[dict]:
    """Every matching article, a batch of ids from the backend and their rows from the store at a time."""
    offset = params.offset
    left = max_rows
    while left is None or left > 0:
        want = BATCH if left is None else min(BATCH, left)
        res = call(ctx.backend.search, params.query(limit=want, offset=offset))
        ids = [int(h.id) for h in res.hits if h.id.isdigit()]
        if not res.hits:
            return
        if left is not None:
            left -= len(res.hits)
        with ctx.db.session() as s:
            rows = export_rows(s, ids, with_text=with_text)
        for aid in ids:
            if aid in rows:  # indexed but deleted from the store since: skip it
                yield rows[aid]
        offset += len(res.hits)
        if offset >= res.total:
            return


def _iso(v):
    return v.isoformat() if hasattr(v, "isoformat") else v


def csv_lines(rows: Iterator[dict]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    n = 0
    for row in rows:
        writer.writerow([";".join(row["topics"]) if c == "topics" else _iso(row[c]) for c in CSV_COLUMNS])
        n += 1
        if n % 200 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def jsonl_lines(rows: Iterator[dict]) -> Iterator[str]:
    chunk: list[str] = []
    for row in rows:
        chunk.append(json.dumps({k: _iso(v) for k, v in row.items()}, ensure_ascii=False) + "\n")
        if len(chunk) >= 100:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def _filename(ext: str) -> str:
    return f"newsmon-export-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.{ext}"


def _first_batch(ctx, params, with_text, max_rows=None):
    """Run the first backend call before the response starts, so a bad query is a 4xx, not a cut stream."""
    it = iter_export(ctx, params, with_text=with_text, max_rows=max_rows)
    first = next(it, None)

    def rest():
        if first is not None:
            yield first
            yield from it

    return rest()


@router.get("/export.csv", summary="Export a search as CSV (streamed)")
async def export_csv(request: Request, q: str | None = Query(None, description="Same parameters as /api/v1/search.")):
    """All matching articles, one row each: id, published, source, title, url, topics, story, language, author, word count."""
    params, max_rows = export_params(request)
    ctx = request.app.state.ctx
    rows = await run_in_threadpool(_first_batch, ctx, params, False, max_rows)
    return StreamingResponse(csv_lines(rows), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{_filename("csv")}"'})


@router.get("/export.jsonl", summary="Export a search as JSON lines with the text (streamed)")
async def export_jsonl(request: Request, q: str | None = Query(None, description="Same parameters as /api/v1/search.")):
    """One JSON object per matching article with the CSV's columns plus the extracted text."""
    params, max_rows = export_params(request)
    ctx = request.app.state.ctx
    rows = await run_in_threadpool(_first_batch, ctx, params, True, max_rows)
    return StreamingResponse(jsonl_lines(rows), media_type="application/x-ndjson; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{_filename("jsonl")}"'})


ATOM_NS = "http://www.w3.org/2005/Atom"


def atom_feed(ctx, params: SearchParams, base: str) -> bytes:
    res = call(ctx.backend.search, params.query(sort="date", limit=ATOM_ENTRIES, offset=0, collapse=False))
    with ctx.db.session() as s:
        names = source_names(s, [int(h.id) for h in res.hits if h.id.isdigit()])
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    title = "newsmon: " + (params.q or "all articles") + "".join(f" [{t}]" for t in params.topics)
    ET.SubElement(feed, f"{{{ATOM_NS}}}title").text = title
    page = base + params.url("/", paging=False)
    ET.SubElement(feed, f"{{{ATOM_NS}}}id").text = page
    ET.SubElement(feed, f"{{{ATOM_NS}}}link", rel="alternate", type="text/html", href=page)
    ET.SubElement(feed, f"{{{ATOM_NS}}}link", rel="self", href=base + params.url("/feeds/search.atom", paging=False))
    newest = max((h.published_at for h in res.hits if h.published_at), default=datetime.now(timezone.utc))
    ET.SubElement(feed, f"{{{ATOM_NS}}}updated").text = newest.isoformat()
    ET.SubElement(ET.SubElement(feed, f"{{{ATOM_NS}}}author"), f"{{{ATOM_NS}}}name").text = "newsmon"
    for h in res.hits:
        e = ET.SubElement(feed, f"{{{ATOM_NS}}}entry")
        ET.SubElement(e, f"{{{ATOM_NS}}}title").text = h.title
        ET.SubElement(e, f"{{{ATOM_NS}}}id").text = f"{base}/articles/{h.id}"
        ET.SubElement(e, f"{{{ATOM_NS}}}link", rel="alternate", href=h.url)
        ET.SubElement(e, f"{{{ATOM_NS}}}link", rel="related", href=f"{base}/articles/{h.id}")
        stamp = (h.published_at or newest).isoformat()
        ET.SubElement(e, f"{{{ATOM_NS}}}updated").text = stamp
        ET.SubElement(e, f"{{{ATOM_NS}}}published").text = stamp
        name = names.get(int(h.id), h.source) if h.id.isdigit() else h.source
        ET.SubElement(ET.SubElement(e, f"{{{ATOM_NS}}}author"), f"{{{ATOM_NS}}}name").text = name
        for t in h.topics:
            ET.SubElement(e, f"{{{ATOM_NS}}}category", term=t)
        # Plain text: the snippet's <mark>s are dropped, the rest was escaped by the backend.
        import html as html_lib

        summary = html_lib.unescape(strip_marks(h.snippet.replace("<mark>", "").replace("</mark>", "")))
        ET.SubElement(e, f"{{{ATOM_NS}}}summary", type="text").text = summary
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")


@router.get("/feeds/search.atom", summary="A search as an Atom feed")
async def search_atom(request: Request, q: str | None = Query(None, description="Same parameters as /api/v1/search.")):
    """The newest 50 matching articles, for a feed reader."""
    params, _ = export_params(request)
    base = request.app.state.base_url or str(request.base_url).rstrip("/")
    body = await run_in_threadpool(atom_feed, request.app.state.ctx, params, base)
    return Response(body, media_type="application/atom+xml; charset=utf-8")
