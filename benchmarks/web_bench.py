"""Benchmark the web UI and JSON API over the embedded defaults (SQLite store + the default index, Tantivy).

Builds N synthetic articles (the search benchmark's generator) in both the store and the index,
then measures, in one run and for the same query mix:

* the search page (results grouped by story, facets, timeline with per-topic lines) and
  /api/v1/search, server-side through the ASGI app, beside the raw ``backend.search`` call
  (the overhead ratio) and beside all the backend calls the page makes;
* CSV export of the whole set (rows/s) and peak RSS of a fresh process at 10K rows and at N rows
  (flat memory means the two peaks are about equal), beside a baseline process that only pages
  the ids out of the backend.

    .venv/bin/python benchmarks/web_bench.py              # 100,000 articles
    .venv/bin/python benchmarks/web_bench.py --n 20000    # a loaded machine
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def search_bench():
    """The search benchmark's article and query generators (a sibling script, not a package)."""
    import importlib

    return importlib.import_module("search_bench")


def settings_for(home: Path):
    from monitor.config import Settings

    return Settings.from_env({"NEWSMON_HOME": str(home), "NEWSMON_SECRET": "bench-secret-0123456789"})


def build(home: Path, n: int, words: int) -> None:
    """Articles, stories and topics in the store; the same documents in the default search index."""
    from sqlalchemy import insert

    from monitor.app import App
    from monitor.storage.models import Article, ArticleTopic, Story
    make_docs = search_bench().make_docs

    docs = list(make_docs(n, words))
    for d in docs:  # the store's story ids are integers (the first article's id)
        d.story_id = d.story_id[1:] if d.story_id else None
    app = App(settings_for(home))
    t0 = time.perf_counter()
    stories: dict[int, list] = {}
    for d in docs:
        if d.story_id:
            stories.setdefault(int(d.story_id), []).append(d)
    with app.db.session() as s:
        s.execute(insert(Story), [
            {"id": sid, "headline": ds[0].title, "first_seen": min(x.published_at for x in ds),
             "last_updated": max(x.published_at for x in ds), "article_count": len(ds),
             "source_count": len({x.source for x in ds})} for sid, ds in stories.items()])
    for i in range(0, n, 5000):
        chunk = docs[i:i + 5000]
        with app.db.session() as s:
            s.execute(insert(Article), [
                {"id": int(d.id), "canonical_url": d.url, "url": d.url, "title": d.title, "text": d.text,
                 "text_source": "page", "published_at": d.published_at, "language": d.language, "source": d.source,
                 "site_name": d.source.split(".")[0].capitalize(), "content_hash": f"h{d.id}",
                 "story_id": int(d.story_id) if d.story_id else None} for d in chunk])
            rows = [{"article_id": int(d.id), "topic": t} for d in chunk for t in d.topics]
            if rows:
                s.execute(insert(ArticleTopic), rows)
    t1 = time.perf_counter()
    app.backend.reindex(docs)
    t2 = time.perf_counter()
    app.close()
    print(f"built {n:,} articles: store {t1 - t0:.1f} s, index {t2 - t1:.1f} s", flush=True)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def to_params(q) -> dict:
    out: dict = {}
    if q.text:
        out["q"] = q.text
    if q.topics:
        out["topic"] = q.topics
    if q.sources:
        out["source"] = q.sources
    if q.languages:
        out["language"] = q.languages
    if q.since:
        out["since"], out["until"] = q.since.isoformat(), q.until.isoformat()
    if q.sort == "date":
        out["sort"] = "date"
    return out


class ServerTimer:
    """ASGI wrapper: time from request start to the last byte sent, i.e. server-side time."""

    def __init__(self, app) -> None:
        self.app, self.last = app, 0.0

    async def __call__(self, scope, receive, send):
        t0 = time.perf_counter()
        await self.app(scope, receive, send)
        self.last = (time.perf_counter() - t0) * 1000


def page_calls(backend, p, topics) -> None:
    """The backend calls the search page makes, one after the other."""
    from monitor.web.service import _series_topics, _topic_query

    backend.search(p.query())
    backend.facets(p.query(collapse=False))
    backend.search(p.query(collapse=False, limit=0))
    backend.timeline(p.query(collapse=False, limit=0))
    for t in _series_topics(p, topics):
        backend.timeline(_topic_query(p, t))


def latency(home: Path, repeats: int, count: int) -> None:
    from fastapi.testclient import TestClient

    from monitor.app import App
    from monitor.web import create_app
    from monitor.web.params import parse_params
    sb = search_bench()
    TOPICS, make_queries, vocabulary = sb.TOPICS, sb.make_queries, sb.vocabulary

    app = App(settings_for(home))
    web = create_app(app)
    web.state.known_topics = TOPICS
    rng = random.Random(11)
    vocab = sb.corpus_vocabulary()
    queries = [to_params(q) for kind, q in make_queries(rng, vocab, count) if kind == "search"]
    timer = ServerTimer(web)
    client = TestClient(timer)
    client.__enter__()  # one event loop for the whole run, as a real server has
    client.get("/")  # warm caches
    series: dict[str, list[float]] = {k: [] for k in ("raw", "raw_all", "page", "api")}
    cpu: dict[str, float] = {k: 0.0 for k in series}
    statuses = set()
    for _ in range(repeats):
        for params in queries:
            multi = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
            p = parse_params(multi, known_topics=TOPICS)
            url_q = urlencode(params, doseq=True)
            steps = {
                "raw": lambda: app.backend.search(p.query()),
                "raw_all": lambda: page_calls(app.backend, p, TOPICS),
                "page": lambda: statuses.add(client.get("/?" + url_q).status_code),
                "api": lambda: statuses.add(client.get("/api/v1/search?" + url_q).status_code),
            }
            for name, fn in steps.items():
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                wall = (time.perf_counter() - t0) * 1000
                series[name].append(timer.last if name in ("page", "api") else wall)
                cpu[name] += (time.process_time() - c0) * 1000
    assert statuses == {200}, statuses
    base50, base95 = statistics.median(series["raw"]), pct(series["raw"], 95)
    print(f"\nlatency over {len(queries)} queries x {repeats} (server-side wall ms; CPU ms/request, all threads):")
    print(f"{'':<34}{'p50':>8}{'p95':>8}{'CPU':>8}{'p50 ratio':>11}{'p95 ratio':>11}")
    labels = {"raw": "backend.search alone (baseline)", "raw_all": "page's backend calls, in series",
              "page": "search page (facets+timeline)", "api": "/api/v1/search"}
    for name, label in labels.items():
        v = series[name]
        print(f"{label:<34}{statistics.median(v):>8.1f}{pct(v, 95):>8.1f}{cpu[name] / len(v):>8.1f}"
              f"{statistics.median(v) / base50:>10.2f}x{pct(v, 95) / base95:>10.2f}x")
    client.__exit__(None, None, None)
    app.close()


def peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def export_child(home: Path, rows: int | None, mode: str) -> None:
    """In a fresh process: stream one export and report rows, seconds, CPU and peak RSS."""
    from fastapi.testclient import TestClient

    from monitor.app import App
    from monitor.web import create_app
    from search.query import SearchQuery

    app = App(settings_for(home))
    app.backend.search(SearchQuery(limit=1))
    rss0 = peak_rss_mb()
    c0, t0 = time.process_time(), time.perf_counter()
    n = 0
    if mode == "ids":  # baseline: page the ids out of the backend, nothing else
        off = 0
        while rows is None or off < rows:
            res = app.backend.search(SearchQuery(sort="date", limit=500, offset=off))
            if not res.hits:
                break
            off += len(res.hits)
        n = off if rows is None else min(off, rows)
    else:
        client = TestClient(create_app(app))
        params = {"sort": "date"} | ({"limit": rows} if rows else {})
        with client.stream("GET", "/export.csv", params=params) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                n += 1
        n -= 1  # header
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = peak_rss_mb()
    print(json.dumps({"rows": n, "wall": wall, "cpu": cpu, "rss_start_mb": rss0, "rss_peak_mb": rss}))
    app.close()


def export(home: Path, n: int, repeats: int) -> None:
    print("\nCSV export, each in a fresh process (median of runs):")
    print(f"{'':<28}{'rows':>9}{'rows/s':>10}{'CPU s':>8}{'RSS start':>11}{'RSS peak':>10}")
    for rows in (10_000, None):
        for mode in ("ids", "csv"):
            runs = []
            for _ in range(repeats):
                cmd = [sys.executable, __file__, "--child", mode, "--home", str(home)] + (["--rows", str(rows)] if rows else [])
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
                runs.append(json.loads(out))
            r = sorted(runs, key=lambda x: x["wall"])[len(runs) // 2]
            label = ("backend ids only (baseline)" if mode == "ids" else "/export.csv")
            print(f"{label:<28}{r['rows']:>9,}{r['rows'] / r['wall']:>10,.0f}{r['cpu']:>8.1f}"
                  f"{r['rss_start_mb']:>9.0f}MB{r['rss_peak_mb']:>8.0f}MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="articles (default 100000)")
    ap.add_argument("--words", type=int, default=200, help="mean words per article")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--home", help="reuse a home built before (skips building)")
    ap.add_argument("--child", choices=["ids", "csv"], help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        export_child(Path(args.home), args.rows, args.child)
        return
    if args.home:
        home = Path(args.home)
    else:
        home = Path(tempfile.mkdtemp(prefix="newsmon-webbench-"))
        build(home, args.n, args.words)
    print(f"home: {home}  ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    latency(home, args.repeats, args.queries)
    export(home, args.n, max(1, args.repeats // 2 + 1))


if __name__ == "__main__":
    main()
