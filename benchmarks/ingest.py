"""Benchmark: our whole ingest against trafilatura alone on the same pages, in the same run.

Serves the real article pages of the extraction fixtures (tests/data/extraction, 91 pages) plus
an RSS feed linking them from a local HTTP server in a separate process, then, each round:

1. baseline: `trafilatura.extract` on the same bytes with the settings newsmon uses
   (monitor/stages/extract.py: `include_comments=False, fast=True`, the same config), on one
   process and on a pool of 2 processes; and, for reference, trafilatura's default mode
   (`fast=False`, fallbacks on);
2. ours: `Pipeline.run` over the feed — fetch, parse, fetch pages, extract with metadata, topics,
   exact + near-duplicate detection, story clustering, store (SQLite), index (FTS5) — with one
   process, 2 and 4 extraction processes.

Prints, as medians over the rounds: articles/s (wall) and CPU ms per article (all processes:
this one and the extraction children), ratios against the baseline on the same number of
processes, the 2-vs-1 and 4-vs-2 scaling, SQL statements per stored article (counted with a
SQLAlchemy `before_cursor_execute` listener; an executemany counts once), peak RSS, and where
the CPU goes (ms per article): the main process's loop thread by stage (feed parsing, inline
extraction with one process, building the candidate, clustering decisions, storing, the index
drain, the rest of the loop), its fetch threads, and the extraction processes.

    .venv/bin/python benchmarks/ingest.py [--rounds 3] [--repeat 1] [--profile]

`--repeat K` serves every page K times under different URLs with a distinct paragraph added,
so the copies are near-duplicates (the dedup stage does real work) but never exact copies.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trafilatura  # noqa: E402
from sqlalchemy import event  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "extraction"


def load_pages(repeat: int) -> dict[str, bytes]:
    truth = json.loads((DATA / "ground-truth.json").read_text())
    pages: dict[str, bytes] = {}
    for k in range(repeat):
        for page_id in sorted(truth):
            raw = gzip.decompress((DATA / "html" / f"{page_id}.html.gz").read_bytes())
            if k:
                marker = f"<p>Editor's note {k}: this copy was republished by outlet number {k}.</p>".encode()
                raw = raw.replace(b"</body>", marker + b"</body>", 1)
            pages[f"/p/{k}/{page_id}.html"] = raw
    return pages


def feed_xml(base: str, paths: list[str]) -> bytes:
    items = "".join(
        f"<item><title>Page {i}</title><link>{base}{p}</link><guid>{base}{p}</guid>"
        f"<pubDate>Mon, 18 Nov 2019 {i % 24:02d}:{i % 60:02d}:00 GMT</pubDate></item>"
        for i, p in enumerate(paths)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>bench</title><link>{base}/</link>{items}</channel></rss>'.encode()


def serve(port_queue, repeat: int) -> None:
    pages = load_pages(repeat)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            path = self.path.split("?")[0]
            if path == "/feed.xml":
                body, ctype = feed_xml(f"http://127.0.0.1:{self.server.server_address[1]}", sorted(pages)), "application/rss+xml"
            elif path in pages:
                body, ctype = pages[path], "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_queue.put(server.server_address[1])
    server.serve_forever()


@dataclass
class Measure:
    rate: float          # articles (pages) per second, wall
    cpu_ms: float        # CPU ms per article, every process involved
    statements: float = 0.0   # SQL statements per stored article (ours only)
    stages: dict[str, float] = field(default_factory=dict)  # CPU ms per article by stage (ours only)


class StageClock:
    """CPU time of the loop thread inside wrapped functions, exclusive of wrapped calls nested in them.

    Only for functions the pipeline calls on its loop thread (one stack, not thread-safe).
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[float] = []

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t0 = time.thread_time()
            self._stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                nested = self._stack.pop()
                dt = time.thread_time() - t0
                self.totals[name] += dt - nested
                if self._stack:
                    self._stack[-1] += dt
        return timed


def _cpu_now() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _extract_fast(raw: bytes) -> None:
    from monitor.stages.extract import TRAFILATURA_OPTIONS   # exactly what extract_page passes

    trafilatura.extract(raw, **TRAFILATURA_OPTIONS)


def _extract_default(raw: bytes) -> None:
    trafilatura.extract(raw, include_comments=False)


def baseline(pages: dict[str, bytes], processes: int, fast: bool = True) -> Measure:
    fn = _extract_fast if fast else _extract_default
    if processes == 1:
        c0, w0 = time.process_time(), time.perf_counter()
        for raw in pages.values():
            fn(raw)
        return Measure(len(pages) / (time.perf_counter() - w0), (time.process_time() - c0) / len(pages) * 1000)
    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(processes)
    pool.map(abs, range(processes * 4))   # start the processes outside the timed part
    (s0, k0), w0 = _cpu_now(), time.perf_counter()
    pool.map(fn, list(pages.values()), chunksize=1)
    wall = time.perf_counter() - w0
    pool.close()
    pool.join()
    s1, k1 = _cpu_now()
    return Measure(len(pages) / wall, ((s1 - s0) + (k1 - k0)) / len(pages) * 1000)


def ours(base: str, workers: int, n_expected: int, profile: str | None = None) -> Measure:
    from monitor.app import App
    from monitor.config import FeedConfig, Settings
    from monitor.storage.outbox import drain_outbox
    from monitor.run.feedsync import sync_feeds
    from monitor.run import pipeline as pipeline_module
    from monitor.run.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="newsmon-bench-") as home:
        settings = Settings.from_env({"NEWSMON_HOME": home, "NEWSMON_ALLOW_HOSTS": "127.0.0.1", "NEWSMON_HOST_INTERVAL": "0"})
        app = App(settings)
        app.feeds_config  # noqa: B018 - load outside the timed part
        pipeline = Pipeline(app.db, settings, app.feeds_config, workers=workers, fetch_threads=8)
        (feed_id,) = sync_feeds(app.db, [FeedConfig(url=f"{base}/feed.xml")])
        backend = app.backend
        if pipeline.extractor is not None:  # start the worker processes outside the timed part
            list(pipeline.extractor.map(abs, range(workers * 4)))
        statements = [0]

        @event.listens_for(app.db.engine, "before_cursor_execute")
        def _count(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
            statements[0] += 1

        # Wrapped after the extraction processes were forked: they keep the real functions.
        clock = StageClock()
        real = {name: getattr(pipeline_module, name) for name in ("parse_feed", "extract_page", "build_candidate", "save_articles")}
        stage_of = {"parse_feed": "parse feed", "extract_page": "extract (inline)", "build_candidate": "build candidate",
                    "save_articles": "store (SQL, rows)"}
        for name, fn in real.items():
            setattr(pipeline_module, name, clock.wrap(stage_of[name], fn))
        pipeline.clusterer.cluster = clock.wrap("clustering decisions", pipeline.clusterer.cluster)
        timed_drain = clock.wrap("index drain", drain_outbox)
        prof = None
        if profile:
            import cProfile
            prof = cProfile.Profile()
            prof.enable()
        (s0, k0), start, t0 = _cpu_now(), time.perf_counter(), time.thread_time()
        try:
            summary = pipeline.run([feed_id])
            timed_drain(app.db, backend)
        finally:
            for name, fn in real.items():
                setattr(pipeline_module, name, fn)
        loop_cpu = time.thread_time() - t0
        elapsed = time.perf_counter() - start
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
        pipeline.close()   # reaps the extraction processes, so their CPU time is counted
        s1, k1 = _cpu_now()
        app.close()
    if summary.entries != n_expected:
        raise SystemExit(f"pipeline saw {summary.entries} entries, expected {n_expected}")
    per = 1000 / summary.entries
    stages = {name: t * per for name, t in clock.totals.items()}
    stages["rest of the loop (fetch dispatch, order, HTTP results)"] = (loop_cpu - sum(clock.totals.values())) * per
    stages["fetch threads (HTTP client)"] = ((s1 - s0) - loop_cpu) * per   # the process's other threads
    stages["extraction processes"] = (k1 - k0) * per
    return Measure(summary.entries / elapsed, ((s1 - s0) + (k1 - k0)) * per,
                   statements[0] / max(1, summary.new_articles), stages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="repeat each measurement; the median is reported")
    ap.add_argument("--repeat", type=int, default=1, help="serve each page this many times (near-duplicate copies)")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the last 1-process ingest round into FILE")
    args = ap.parse_args()

    pages = load_pages(args.repeat)
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    server = ctx.Process(target=serve, args=(q, args.repeat), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{q.get(timeout=30)}"
    runs: dict[str, list[Measure]] = {k: [] for k in ("base1", "base2", "default1", "ours1", "ours2", "ours4")}
    try:
        baseline(dict(list(pages.items())[:5]), 1)  # warm imports and caches for both sides alike
        for r in range(args.rounds):
            runs["base1"].append(baseline(pages, 1))
            runs["base2"].append(baseline(pages, 2))
            runs["default1"].append(baseline(pages, 1, fast=False))
            last = r == args.rounds - 1
            runs["ours1"].append(ours(base, 1, len(pages), args.profile if last else None))
            runs["ours2"].append(ours(base, 2, len(pages)))
            runs["ours4"].append(ours(base, 4, len(pages)))
    finally:
        server.terminate()
    med = {k: Measure(statistics.median(m.rate for m in v), statistics.median(m.cpu_ms for m in v),
                      statistics.median(m.statements for m in v),
                      {name: statistics.median(m.stages.get(name, 0.0) for m in v) for name in v[0].stages})
           for k, v in runs.items()}
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    b1, b2, d1, o1, o2, o4 = (med[k] for k in ("base1", "base2", "default1", "ours1", "ours2", "ours4"))
    print(f"pages: {len(pages)} ({args.repeat} cop{'y' if args.repeat == 1 else 'ies'} of the 91 extraction pages), "
          f"rounds: {args.rounds} (medians), cores: {os.cpu_count()}")
    print("                                                 articles/s   CPU ms/article")
    print(f"trafilatura fast=True (our settings), 1 process : {b1.rate:8.1f}   {b1.cpu_ms:8.1f}")
    print(f"trafilatura fast=True (our settings), 2 processes: {b2.rate:8.1f}   {b2.cpu_ms:8.1f}")
    print(f"trafilatura default mode (fallbacks), 1 process : {d1.rate:8.1f}   {d1.cpu_ms:8.1f}")
    print(f"newsmon ingest, 1 process                       : {o1.rate:8.1f}   {o1.cpu_ms:8.1f}   "
          f"rate {o1.rate / b1.rate:.2f}x, CPU {o1.cpu_ms / b1.cpu_ms:.2f}x trafilatura fast 1-proc "
          f"(CPU {o1.cpu_ms / d1.cpu_ms:.2f}x default mode)")
    print(f"newsmon ingest, 2 extraction processes          : {o2.rate:8.1f}   {o2.cpu_ms:8.1f}   "
          f"rate {o2.rate / b2.rate:.2f}x, CPU {o2.cpu_ms / b2.cpu_ms:.2f}x trafilatura fast 2-proc")
    print(f"newsmon ingest, 4 extraction processes          : {o4.rate:8.1f}   {o4.cpu_ms:8.1f}")
    print(f"scaling: 2 vs 1 process {o2.rate / o1.rate:.2f}x (trafilatura {b2.rate / b1.rate:.2f}x), "
          f"4 vs 2 {o4.rate / o2.rate:.2f}x")
    print(f"SQL statements per stored article: 1 process {o1.statements:.1f}, 2 processes {o2.statements:.1f}")
    print(f"peak RSS: main process {rss_self:.0f} MB, largest child {rss_children:.0f} MB")
    print("CPU ms per article by stage              1 process   2 processes")
    for name in o1.stages:
        print(f"  {name:<55}: {o1.stages[name]:6.2f}   {o2.stages.get(name, 0.0):6.2f}")
    print(f"  {'total':<55}: {sum(o1.stages.values()):6.2f}   {sum(o2.stages.values()):6.2f}")


if __name__ == "__main__":
    main()
