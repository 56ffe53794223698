"""Benchmark: our whole ingest against trafilatura alone on the same pages, in the same run.

Serves the real article pages of the extraction fixtures (tests/data/extraction, 91 pages) plus
an RSS feed linking them from a local HTTP server in a separate process, then

1. baseline: `trafilatura.extract(html, include_comments=False)` on the same bytes, one process;
2. ours: `Pipeline.run` over the feed — fetch, parse, fetch pages, extract with metadata, topics,
   exact + near-duplicate detection, story clustering, store (SQLite), index (FTS5) — with one
   extraction process, then with two (both cores).

Prints articles/s for each, the ratios against the baseline, and peak RSS.

    .venv/bin/python benchmarks/ingest.py [--rounds 3] [--repeat 1]

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trafilatura  # noqa: E402

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


def baseline(pages: dict[str, bytes]) -> float:
    start = time.perf_counter()
    for raw in pages.values():
        trafilatura.extract(raw, include_comments=False)
    return len(pages) / (time.perf_counter() - start)


def ours(base: str, workers: int, n_expected: int) -> tuple[float, int]:
    from monitor.app import App
    from monitor.config import FeedConfig, Settings
    from monitor.storage.outbox import drain_outbox
    from monitor.run.pipeline import Pipeline, sync_feeds

    with tempfile.TemporaryDirectory(prefix="newsmon-bench-") as home:
        settings = Settings.from_env({"NEWSMON_HOME": home, "NEWSMON_ALLOW_HOSTS": "127.0.0.1", "NEWSMON_HOST_INTERVAL": "0"})
        app = App(settings)
        app.feeds_config  # noqa: B018 - load outside the timed part
        pipeline = Pipeline(app.db, settings, app.feeds_config, workers=workers, fetch_threads=8)
        (feed_id,) = sync_feeds(app.db, [FeedConfig(url=f"{base}/feed.xml")])
        backend = app.backend
        if pipeline.extractor is not None:  # start the worker processes outside the timed part
            list(pipeline.extractor.map(abs, range(workers)))
        start = time.perf_counter()
        summary = pipeline.run([feed_id])
        drain_outbox(app.db, backend)
        elapsed = time.perf_counter() - start
        pipeline.close()
        app.close()
    stored = summary.new_articles + summary.duplicates
    if summary.entries != n_expected:
        raise SystemExit(f"pipeline saw {summary.entries} entries, expected {n_expected}")
    return summary.entries / elapsed, stored


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="repeat each measurement; the median is reported")
    ap.add_argument("--repeat", type=int, default=1, help="serve each page this many times (near-duplicate copies)")
    args = ap.parse_args()

    pages = load_pages(args.repeat)
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    server = ctx.Process(target=serve, args=(q, args.repeat), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{q.get(timeout=30)}"
    try:
        baseline(dict(list(pages.items())[:5]))  # warm imports and caches for both sides alike
        base_rates, one_rates, two_rates = [], [], []
        for _ in range(args.rounds):
            base_rates.append(baseline(pages))
            one_rates.append(ours(base, 1, len(pages))[0])
            two_rates.append(ours(base, 2, len(pages))[0])
    finally:
        server.terminate()
    b, one, two = (statistics.median(r) for r in (base_rates, one_rates, two_rates))
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"pages: {len(pages)} ({args.repeat} cop{'y' if args.repeat == 1 else 'ies'} of the 91 extraction pages), "
          f"rounds: {args.rounds}, cores: {os.cpu_count()}")
    print(f"trafilatura alone (extract, comments off), 1 process : {b:7.1f} articles/s")
    print(f"newsmon ingest, 1 extraction process                 : {one:7.1f} articles/s   ratio {one / b:.2f}")
    print(f"newsmon ingest, 2 extraction processes               : {two:7.1f} articles/s   ratio {two / b:.2f}")
    print(f"peak RSS: main process {rss_self:.0f} MB, largest child {rss_children:.0f} MB")


if __name__ == "__main__":
    main()
