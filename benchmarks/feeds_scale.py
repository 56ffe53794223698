"""Benchmark: `newsmon run` workers sharing many feeds on one PostgreSQL, healthy and with 30 % faulty feeds.

A feed farm (tests/feedfarm.py) runs in its own process on several loopback addresses
(127.0.0.1 … 127.0.0.N, one host each) with a fixed per-request latency, so the work is bound by
network waits as it is against real sites. For each scenario (all healthy; `--faulty` share of
feeds that hang, trickle, fail, loop or stream forever) and each worker count (1, 2, 3), a fresh
PostgreSQL schema gets the feeds, the workers are started and left to finish their start-up,
then every feed falls due at the same instant; the clock runs until every healthy feed is
finished. Printed per run: healthy feeds/s, articles/s, the scaling ratio against 1 worker of
the same scenario, the faulty/healthy ratio for the same worker count, CPU seconds of the
workers beside wall seconds, and each worker's peak RSS (goal ≤ 300 MB) beside its peak
anonymous memory (sampled every 0.2 s; RSS without mapped files such as shared libraries and
the SQLite index's mmap, which the kernel can drop at any time).

    .venv/bin/python benchmarks/feeds_scale.py [--feeds 1000] [--items 20] [--workers 1,2,3]
        [--latency 0.25] [--feed-fetches 4] [--page-fetches 4] [--hosts 8] [--faulty-hosts 32] [--repeat 1]
        [--scenarios healthy,faulty]

The faulty feeds live on loopback addresses of their own (127.0.0.N+1 …, `--faulty-hosts`), the
healthy ones on 127.0.0.1 … N in both scenarios, placed the same way: on the real web a faulty
feed is a faulty site, and a worker keeps at most NEWSMON_HOST_CONCURRENCY (2) requests in
flight per host, a hanging one included. With faulty and healthy feeds mixed on the same hosts,
hanging requests held the healthy feeds' host slots and the faulty run measured 0.34x the
healthy throughput: an artefact of the farm, not of the loop.

`--feed-fetches/--page-fetches` cap each worker's concurrency (NEWSMON_FEED_FETCHES /
NEWSMON_PAGE_FETCHES) so that one worker is bound by the network waits, not by this machine's
CPU: that is the case where N workers should give N×. Needs DATABASE_URL=postgresql://…
(default: the local test database).

Duration: with the defaults one worker is capped at 4 pages / 0.25 s = 16 articles/s, so
1000 × 20 takes ~25 min per 1-worker run and the whole table (2 scenarios × 1, 2, 3 workers)
1.5–2 h on a 2-core machine. Healthy and faulty runs alternate, so an interrupted run still gives
pairs; run nothing else CPU-heavy beside it (a test suite started mid-run slowed the faulty run
by a third, which reads as a fault effect).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text, update  # noqa: E402

from monitor.config import FeedConfig  # noqa: E402
from monitor.run.feedsync import sync_feeds  # noqa: E402
from monitor.storage.db import Database, normalise_url  # noqa: E402
from monitor.storage.models import Article, Feed, utcnow  # noqa: E402

FARM = """
import sys, time
sys.path.insert(0, {root!r})
from tests.feedfarm import FeedFarm
farm = FeedFarm({feeds}, {items}, faulty={faulty}, hosts={hosts!r}, faulty_hosts={faulty_hosts!r}, latency={latency})
print(" ".join(farm.origins), flush=True)
print(" ".join(str(i) for i in sorted(farm.faults)), flush=True)
print(" ".join(farm.feed_url(i) for i in range({feeds})), flush=True)
sys.stdin.read()
"""


@dataclass
class Result:
    workers: int
    wall: float
    healthy_feeds: int
    articles: int
    cpu: float
    rss_mb: list[float]
    anon_mb: list[float]   # peak anonymous memory, sampled: RSS without the mapped files (libraries, SQLite mmap)

    @property
    def feeds_per_s(self) -> float:
        return self.healthy_feeds / self.wall

    @property
    def articles_per_s(self) -> float:
        return self.articles / self.wall


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _anon_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(base_url: str, origins: list[str], faults: set[int], urls: list[str], args, workers: int) -> Result:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(base_url))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{normalise_url(base_url)}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"
    tmp = Path(tempfile.mkdtemp(prefix="newsmon-scale-"))
    try:
        feeds_file = tmp / "feeds.yaml"
        feeds_file.write_text("defaults: {interval_minutes: 600}\nfeeds:\n" + "".join(f"  - url: {u}\n" for u in urls))
        db = Database(url)
        sync_feeds(db, [FeedConfig(url=u, interval_minutes=600) for u in urls])
        start_at = utcnow() + timedelta(seconds=args.startup)
        with db.session() as s:
            s.execute(update(Feed).values(next_fetch_at=start_at))
        env = {**os.environ, "DATABASE_URL": url, "NEWSMON_HOME": str(tmp / "home"), "SEARCH_URL": f"sqlite:///{tmp}/search.sqlite",
               "NEWSMON_ALLOW_HOSTS": ",".join(o.split("//")[1].split(":")[0] for o in origins), "NEWSMON_FEEDS": "",
               "NEWSMON_HOST_INTERVAL": "0", "NEWSMON_FEED_FETCHES": str(args.feed_fetches),
               "NEWSMON_PAGE_FETCHES": str(args.page_fetches)}
        procs = [subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "--feeds", str(feeds_file), "--tick", "5",
                                   "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / f"w{k}.log", "w"))
                 for k in range(workers)]
        healthy_ids = None
        try:
            with db.session() as s:
                by_url = dict(s.execute(select(Feed.url, Feed.id)).all())
            healthy_ids = [by_url[u] for i, u in enumerate(urls) if i not in faults]
            cpu0 = None
            anon = [0.0] * len(procs)
            while True:
                anon = [max(a, _anon_mb(p.pid)) for a, p in zip(anon, procs)]
                now = utcnow()
                if cpu0 is None and now >= start_at:
                    cpu0 = sum(_proc_cpu(p.pid) for p in procs)
                    t0 = time.monotonic()
                with db.session() as s:
                    done = s.scalar(select(func.count(Feed.id)).where(Feed.id.in_(healthy_ids), Feed.last_success_at.is_not(None)))
                if done == len(healthy_ids):
                    break
                for p in procs:
                    if p.poll() is not None:
                        raise SystemExit(f"a worker exited with {p.returncode}; see {tmp}")
                time.sleep(0.2)
            wall = time.monotonic() - t0
            cpu = sum(_proc_cpu(p.pid) for p in procs) - cpu0
            rss = [_peak_rss_mb(p.pid) for p in procs]
            with db.session() as s:
                articles = s.scalar(select(func.count(Article.id)))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()
            db.close()
        return Result(workers, wall, len(healthy_ids), articles, cpu, rss, anon)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class Farm:
    faulty: float
    proc: subprocess.Popen
    origins: list[str]
    faults: set[int]
    urls: list[str]


def start_farm(args, faulty: float) -> Farm:
    hosts = tuple(f"127.0.0.{k}" for k in range(1, args.hosts + 1))
    # The faulty feeds get loopback addresses of their own (none are used when all feeds are
    # healthy), so the healthy feeds sit on the same hosts in both scenarios.
    faulty_hosts = tuple(f"127.0.0.{k}" for k in range(args.hosts + 1, args.hosts + 1 + args.faulty_hosts)) if faulty else ()
    proc = subprocess.Popen([sys.executable, "-c", FARM.format(root=str(ROOT), feeds=args.feeds, items=args.items, faulty=faulty,
                                                               hosts=hosts, faulty_hosts=faulty_hosts, latency=args.latency)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    origins = proc.stdout.readline().split()
    faults = {int(x) for x in proc.stdout.readline().split()}
    urls = proc.stdout.readline().split()
    return Farm(faulty, proc, origins, faults, urls)


def stop_farm(farm: Farm) -> None:
    farm.proc.stdin.close()
    farm.proc.wait(timeout=30)


def median_run(rs: list[Result]) -> Result:
    return min(rs, key=lambda r: abs(r.wall - statistics.median(x.wall for x in rs)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--workers", default="1,2,3", help="worker counts to run, comma-separated")
    ap.add_argument("--faulty", type=float, default=0.3)
    ap.add_argument("--latency", type=float, default=0.25, help="seconds the farm waits before each answer")
    ap.add_argument("--hosts", type=int, default=8, help="loopback addresses 127.0.0.1..N used as hosts")
    ap.add_argument("--faulty-hosts", type=int, default=32,
                    help="further loopback addresses, after the regular ones, that serve only the faulty feeds")
    ap.add_argument("--feed-fetches", type=int, default=4)
    ap.add_argument("--page-fetches", type=int, default=4)
    ap.add_argument("--startup", type=float, default=12.0, help="seconds left to the workers to start before feeds fall due")
    ap.add_argument("--scenarios", default="healthy,faulty", help="which farms to run: healthy, faulty or both")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (the median is reported)")
    args = ap.parse_args()
    args.workers = [int(x) for x in args.workers.split(",")]
    base_url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    if not base_url.startswith(("postgres://", "postgresql")):
        raise SystemExit("feeds_scale needs PostgreSQL: set DATABASE_URL=postgresql://…")
    print(f"{args.feeds} feeds x {args.items} items on {args.hosts} loopback hosts (+{args.faulty_hosts} for the faulty feeds), "
          f"{args.latency}s latency per request, per worker {args.feed_fetches} feed + {args.page_fetches} page fetches at once; "
          f"workers {args.workers}", flush=True)
    scenarios = set(args.scenarios.split(","))
    farms = ([start_farm(args, 0.0)] if "healthy" in scenarios else []) + ([start_farm(args, args.faulty)] if "faulty" in scenarios else [])
    results: dict[tuple[float, int], list[Result]] = {}
    try:
        # Healthy and faulty runs alternate per worker count, so that an interrupted benchmark
        # still has matching pairs and both sides of a ratio see similar machine load.
        for _ in range(args.repeat):
            for n in args.workers:
                for farm in farms:
                    r = one_run(base_url, farm.origins, farm.faults, farm.urls, args, n)
                    results.setdefault((farm.faulty, n), []).append(r)
                    print(f"  faulty={farm.faulty:.0%} workers={n}: {r.wall:6.1f} s wall, {r.cpu:6.1f} s CPU, "
                          f"{r.feeds_per_s:6.2f} healthy feeds/s, {r.articles_per_s:7.1f} articles/s, "
                          f"peak RSS {', '.join(f'{m:.0f}' for m in r.rss_mb)} MB (anonymous {', '.join(f'{m:.0f}' for m in r.anon_mb)} MB)", flush=True)
    finally:
        for farm in farms:
            stop_farm(farm)
    if len(farms) < 2:
        return  # the table compares both scenarios; the lines above are the result
    healthy = {n: median_run(results[(0.0, n)]) for n in args.workers}
    faulty = {n: median_run(results[(args.faulty, n)]) for n in args.workers}
    one = args.workers[0]
    print("\nworkers | healthy: feeds/s  articles/s  x vs 1 | faulty: healthy feeds/s  x vs 1  vs healthy | CPU s (h/f) | peak RSS MB (anon)")
    for n in args.workers:
        h, f = healthy[n], faulty[n]
        print(f"{n:7d} | {h.feeds_per_s:15.2f} {h.articles_per_s:11.1f} {h.feeds_per_s / healthy[one].feeds_per_s:7.2f} | "
              f"{f.feeds_per_s:21.2f} {f.feeds_per_s / faulty[one].feeds_per_s:7.2f} {f.feeds_per_s / h.feeds_per_s:10.2f} | "
              f"{h.cpu:5.1f}/{f.cpu:5.1f} | {max(h.rss_mb + f.rss_mb):.0f} ({max(h.anon_mb + f.anon_mb):.0f})")


if __name__ == "__main__":
    main()
