"""Search benchmark: Tantivy and FTS5 backends side by side on one synthetic corpus, same run.

Builds the corpus deterministically (seeded; streamed, so 1M articles fit), indexes it into both
embedded backends and measures, interleaving the backends query by query so both see the same
machine load:

- indexing: bulk reindex docs/s (wall and CPU), batched upserts as the outbox drain sends them,
  index size on disk;
- the mixed query set (words, phrases, OR, NOT, prefix*, groups, with filters, date sort, story
  collapse, paging; exact totals, top 20, snippets) with p50/p95, and how many totals agree;
- browsing: the empty query by date, with and without story collapse, plain and with filters;
- timelines (day and week) for mixed queries;
- the baseline: plain FTS5 ``SELECT rowid … MATCH ? ORDER BY rank LIMIT 20`` for the same texts on
  the same FTS5 table (no filters, totals or snippets);
- the first query in a new process (import + open + one query), median of 5.

    .venv/bin/python benchmarks/search_bench.py             # 100,000 articles
    .venv/bin/python benchmarks/search_bench.py --n 1000000
    .venv/bin/python benchmarks/search_bench.py --n 5000     # quick run
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.documents import SearchDocument  # noqa: E402
from search.fts5 import FTS5Backend, fts_match_expression  # noqa: E402
from search.query import QuerySyntaxError, SearchQuery, parse_query  # noqa: E402
from search.tantivy_backend import TantivyBackend  # noqa: E402

SOURCES = [f"{n}.com" for n in ("reuters", "apnews", "bbc", "politico", "kyivindependent", "dw", "france24",
                                  "aljazeera", "nytimes", "theguardian", "ft", "economist", "euractiv",
                                  "defensenews", "rferl", "meduza", "tass", "ukrinform", "pravda", "cnn")]
TOPICS = ["nato", "ukraine-aid", "trump-foreign-policy", "sanctions", "russia", "china", "middle-east",
          "eu", "defence-spending", "elections"]
NAMES = ["nato", "zelenskyy", "zelensky", "залужний", "putin", "trump", "biden", "stoltenberg", "rutte",
         "kyiv", "moscow", "brussels", "washington", "summit", "article", "aid", "sanctions", "ceasefire"]
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
DAYS = 3 * 365


def vocabulary(rng: random.Random, size: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set(NAMES)
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    out = sorted(words)
    rng.shuffle(out)
    return out


def make_docs(n: int, words: int, seed: int = 7) -> Iterator[SearchDocument]:
    """The same n articles for the same seed, streamed (1M articles do not fit in memory).

    Word draws are vectorised (numpy, Zipf over a 30,000-word vocabulary) so that generating the
    corpus costs far less than indexing it."""
    vocab = vocabulary(random.Random(seed), 30_000)
    probs = 1.0 / np.arange(1, len(vocab) + 1)
    probs /= probs.sum()
    title_probs = probs[:3000] / probs[:3000].sum()
    gen = np.random.default_rng(seed)
    story, i = 0, 0
    chunk = 2000
    while i < n:
        m = min(chunk, n - i)
        lengths = np.maximum(20, gen.normal(words, words / 4, m).astype(int))
        bodies = gen.choice(len(vocab), size=int(lengths.sum()), p=probs).tolist()
        tlens = gen.integers(5, 13, m)
        titles = gen.choice(3000, size=int(tlens.sum()), p=title_probs).tolist()
        r = gen.random((m, 8))
        names = gen.integers(0, len(NAMES), (m, 6)).tolist()
        inserts = gen.integers(0, 5, m).tolist()
        seconds = gen.integers(0, DAYS * 86400, m).tolist()
        src = gen.integers(0, len(SOURCES), m).tolist()
        lang = gen.choice(5, size=m, p=[0.7, 0.1, 0.1, 0.05, 0.05]).tolist()
        ntopics = gen.integers(0, 4, m).tolist()
        topic_perm = np.argsort(gen.random((m, len(TOPICS))), axis=1).tolist()
        pos = tpos = 0
        for j in range(m):
            body = [vocab[w] for w in bodies[pos:pos + lengths[j]]]
            pos += lengths[j]
            for k in range(inserts[j]):  # names dropped in at random-ish places
                body.insert((k * 7919 + j) % len(body), NAMES[names[j][k]])
            if r[j, 0] < 0.05:
                body.insert(len(body) // 2, "article 5")
            if r[j, 1] < 0.3:
                story += 1
            title = [vocab[w] for w in titles[tpos:tpos + tlens[j]]] + [NAMES[names[j][5]]]
            tpos += tlens[j]
            i += 1
            yield SearchDocument(
                id=str(i), url=f"https://example.org/a/{i}", title=" ".join(title).capitalize(),
                text=" ".join(body), source=SOURCES[src[j]], language=("en", "uk", "ru", "de", "fr")[lang[j]],
                author=None, published_at=START + timedelta(seconds=seconds[j]),
                topics=[TOPICS[t] for t in topic_perm[j][:ntopics[j]]],
                story_id=f"s{story}" if r[j, 2] < 0.7 else None, is_duplicate=bool(r[j, 3] < 0.1))


def corpus_vocabulary(seed: int = 7) -> list[str]:
    return vocabulary(random.Random(seed), 30_000)


def make_queries(rng: random.Random, vocab: list[str], count: int = 200) -> list[tuple[str, SearchQuery]]:
    common, mid, rare = vocab[:200], vocab[200:3000], vocab[3000:]
    texts = [
        lambda: rng.choice(NAMES),
        lambda: rng.choice(mid),
        lambda: rng.choice(rare),
        lambda: f"{rng.choice(NAMES)} {rng.choice(mid)}",
        lambda: f"{rng.choice(mid)} {rng.choice(mid)} {rng.choice(rare)}",
        lambda: f"{rng.choice(common)} {rng.choice(common)}",
        lambda: '"article 5"',
        lambda: f'"{rng.choice(common)} {rng.choice(common)}"',
        lambda: f"{rng.choice(NAMES)} -{rng.choice(NAMES)}",
        lambda: f"{rng.choice(mid)} OR {rng.choice(mid)}",
        lambda: f"({rng.choice(NAMES)} OR {rng.choice(NAMES)}) {rng.choice(mid)}",
        lambda: "zelensk*",
        lambda: f"{rng.choice(mid)[:4]}*",
        lambda: "",
    ]
    out = []
    for i in range(count):
        text = rng.choice(texts)()
        kw: dict = {}
        r = rng.random()
        if r < 0.25:
            kw["sources"] = rng.sample(SOURCES, rng.randint(1, 3))
        elif r < 0.45:
            kw["topics"] = rng.sample(TOPICS, rng.randint(1, 2))
        elif r < 0.55:
            kw["languages"] = ["en"]
        if rng.random() < 0.4:
            since = (START + timedelta(days=rng.randrange(DAYS - 30))).date()
            kw["since"], kw["until"] = since, since + timedelta(days=rng.choice([7, 30, 180]))
        if rng.random() < 0.3:
            kw["sort"] = "date"
        if rng.random() < 0.2:
            kw["collapse_stories"] = True
        if rng.random() < 0.2:
            kw["include_duplicates"] = False
        if rng.random() < 0.1:
            kw["offset"] = 20 * rng.randint(1, 5)
        kind = "timeline" if i % 10 == 9 else "search"
        out.append((kind, SearchQuery(text=text, **kw)))
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")


def ms(x: float) -> str:
    return f"{x * 1000:6.1f} ms"


def browse_queries(rng: random.Random) -> list[SearchQuery]:
    """The front page and its filtered variants: empty text, newest first, with and without collapse."""
    out = []
    for collapse in (False, True):
        for i in range(20):
            kw: dict = {"sort": "date", "collapse_stories": collapse, "offset": 20 * (i % 3)}
            r = i % 5
            if r == 1:
                kw["sources"] = [rng.choice(SOURCES)]
            elif r == 2:
                kw["topics"] = [rng.choice(TOPICS)]
            elif r == 3:
                since = (START + timedelta(days=rng.randrange(DAYS - 30))).date()
                kw["since"], kw["until"] = since, since + timedelta(days=7)
            elif r == 4:
                kw["include_duplicates"] = False
            out.append(SearchQuery(**kw))
    return out


class Timer:
    """Wall and CPU time of each call, per backend."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def run(self, fn, *a):
        c, t = time.process_time(), time.perf_counter()
        out = fn(*a)
        self.wall.append(time.perf_counter() - t)
        self.cpu.append(time.process_time() - c)
        return out

    def line(self, label: str, base: "Timer | None" = None) -> str:
        w50, w95 = pct(self.wall, 50), pct(self.wall, 95)
        out = (f"  {label:<34} p50 {ms(w50)}  p95 {ms(w95)}  max {ms(max(self.wall))}  "
               f"cpu p95 {ms(pct(self.cpu, 95))}")
        if base is not None:
            out += f"  | p95 ratio {w95 / pct(base.wall, 95):.2f}x"
        return out


def first_query(url: str, text: str, repeat: int) -> tuple[float, float]:
    """Median (inside the child: import + open + one search, wall; whole child process, wall)."""
    code = ("import time; t=time.perf_counter(); from search import open_backend, SearchQuery; "
            f"b=open_backend({url!r}); r=b.search(SearchQuery(text={text!r})); "
            "print(time.perf_counter()-t, r.total)")
    inner, outer = [], []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(repeat):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        outer.append(time.perf_counter() - t)
        inner.append(float(out.stdout.split()[0]))
    return statistics.median(inner), statistics.median(outer)


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="number of synthetic articles (default 100000)")
    ap.add_argument("--words", type=int, default=400, help="mean words per article (default 400)")
    ap.add_argument("--queries", type=int, default=200, help="mixed queries (default 200)")
    ap.add_argument("--upsert-sample", type=int, default=2000, help="articles re-sent through upsert() in batches of 500")
    ap.add_argument("--dir", default=None, help="directory for the indexes (default: a temp dir, removed after)")
    ap.add_argument("--keep", action="store_true", help="reuse indexes already built in --dir")
    args = ap.parse_args()

    tmp = Path(args.dir or tempfile.mkdtemp(prefix="search-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    vocab = corpus_vocabulary()
    print(f"corpus: {args.n:,} synthetic articles, ~{args.words} words, seed 7; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    backends: dict[str, object] = {}
    urls = {"tantivy": f"tantivy:///{tmp}/tantivy", "fts5": f"sqlite:///{tmp}/fts5.sqlite"}
    print("indexing (bulk reindex from a stream of documents, as `newsmon reindex`):")
    c, t = time.process_time(), time.perf_counter()
    for _ in make_docs(min(args.n, 20_000), args.words):
        pass
    gen_s = (time.perf_counter() - t) / min(args.n, 20_000)
    print(f"  (generating the documents alone: {1 / gen_s:,.0f} docs/s; included in both rates below)")
    rates = {}
    for name, cls, path in (("tantivy", TantivyBackend, tmp / "tantivy"), ("fts5", FTS5Backend, tmp / "fts5.sqlite")):
        be = cls(path)
        backends[name] = be
        if args.keep and be.count() == args.n:
            print(f"  {name:<8} reused ({args.n:,} docs)")
            continue
        c, t = time.process_time(), time.perf_counter()
        be.reindex(make_docs(args.n, args.words))
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        rates[name] = args.n / wall
        size = dir_size(path) if path.is_dir() else sum(f.stat().st_size for f in tmp.glob("fts5.sqlite*"))
        net = args.n / max(wall - gen_s * args.n, 1e-9)
        print(f"  {name:<8} {args.n / wall:8,.0f} docs/s wall ({wall:6.1f} s, cpu {cpu:6.1f} s; "
              f"{net:,.0f} docs/s without generation)   "
              f"size {size / 1e6:7.1f} MB ({size / args.n:,.0f} B/article)")
    if len(rates) == 2:
        print(f"  tantivy / fts5 indexing rate: {rates['tantivy'] / rates['fts5']:.2f}x")
    tv, ft = backends["tantivy"], backends["fts5"]

    sample = list(make_docs(min(args.upsert_sample, args.n), args.words))
    print("upsert in batches of 500, replacing existing articles (the outbox drain):")
    for name, be in backends.items():
        c, t = time.process_time(), time.perf_counter()
        for i in range(0, len(sample), 500):
            be.upsert(sample[i:i + 500])
        wall = time.perf_counter() - t
        print(f"  {name:<8} {len(sample) / wall:8,.0f} docs/s (cpu {time.process_time() - c:.1f} s)")

    rng = random.Random(11)
    mixed = [q for kind, q in make_queries(rng, vocab, args.queries)]
    for q in mixed[:10]:  # warm caches
        tv.search(q), ft.search(q)

    t_tv, t_ft, t_plain = Timer(), Timer(), Timer()
    same = differ = 0
    examples = []
    con = ft._con()  # noqa: SLF001 - benchmark only: the baseline runs on the same FTS5 table
    g = int(con.execute("SELECT value FROM search_meta WHERE key='generation'").fetchone()[0])
    for q in mixed:
        try:
            a = t_tv.run(tv.search, q)
            b = t_ft.run(ft.search, q)
        except QuerySyntaxError:
            continue
        if a.total == b.total:
            same += 1
        else:
            differ += 1
            examples.append((q.text, a.total, b.total))
        node = parse_query(q.text)
        if node is not None:
            try:
                expr = fts_match_expression(node)
            except ValueError:
                continue
            t_plain.run(lambda e: con.execute(
                f"SELECT rowid FROM fts_{g} WHERE fts_{g} MATCH ? ORDER BY rank LIMIT 20", (e,)).fetchall(), expr)
    print(f"\nmixed queries ({len(t_tv.wall)}: text, filters, date sort, collapse, paging; exact totals, top 20, snippets)")
    print(t_plain.line(f"plain FTS5 MATCH+rank LIMIT 20 ({len(t_plain.wall)})"))
    print(t_ft.line("FTS5 backend", t_plain))
    print(t_tv.line("Tantivy backend", t_plain))
    print(f"  Tantivy / FTS5 backend p95: {pct(t_tv.wall, 95) / pct(t_ft.wall, 95):.2f}x   "
          f"totals identical on {same}/{same + differ} queries" + (f"; e.g. {examples[:3]}" if examples else ""))

    print("\nbrowsing (empty query, newest first; plain, by source, topic, week, without duplicates; pages 1-3)")
    for collapse in (False, True):
        b_tv, b_ft = Timer(), Timer()
        agree = 0
        qs = [q for q in browse_queries(random.Random(5)) if q.collapse_stories == collapse]
        for q in qs:
            tv.search(q)  # first touch of a filter: not what a user repeating the front page sees
            a = b_tv.run(tv.search, q)
            b = b_ft.run(ft.search, q)
            agree += a.total == b.total
        label = "with story collapse" if collapse else "without collapse"
        print(f" {label} (totals identical {agree}/{len(qs)}):")
        print(b_ft.line("FTS5 backend"))
        print(b_tv.line("Tantivy backend", b_ft) + "  (ratio vs FTS5)")

    print("\ntimeline (mixed queries and filters, by day and by week)")
    tl_tv, tl_ft = Timer(), Timer()
    agree = 0
    for i, q in enumerate(mixed[:100]):
        interval = "week" if i % 2 else "day"
        try:
            a = tl_tv.run(tv.timeline, q, interval)
            b = tl_ft.run(ft.timeline, q, interval)
        except QuerySyntaxError:
            continue
        agree += a == b
    print(tl_ft.line("FTS5 backend"))
    print(tl_tv.line("Tantivy backend", tl_ft) + "  (ratio vs FTS5)")
    print(f"  identical timelines on {agree}/{len(tl_tv.wall)} queries")

    print("\nfirst query in a new process (import + open + search 'nato summit'; median of 5)")
    fq = {name: first_query(url, "nato summit", 5) for name, url in urls.items()}
    for name, (inner, outer) in fq.items():
        print(f"  {name:<8} {ms(inner)} in the child, {ms(outer)} whole process")
    print(f"  tantivy / fts5: {fq['tantivy'][0] / fq['fts5'][0]:.2f}x")
    for be in backends.values():
        be.close()
    if args.dir is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
