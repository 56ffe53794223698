"""Benchmark the embedded FTS5 search backend on synthetic articles.

Prints indexing throughput (bulk reindex and batched upserts as the outbox drain does them), latency
p50/p95 for a mix of 200 researcher queries with filters, timelines over the whole range, and the
same text queries as a plain FTS5 ``MATCH … ORDER BY rank LIMIT 20`` on the same table in the same
run, so the ratio shows our overhead (filters, exact totals, snippets, metadata).

    .venv/bin/python benchmarks/search_bench.py            # 100,000 articles
    .venv/bin/python benchmarks/search_bench.py --n 5000   # quick run
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.documents import SearchDocument  # noqa: E402
from search.fts5 import FTS5Backend, fts_match_expression  # noqa: E402
from search.query import SearchQuery, parse_query  # noqa: E402

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


def make_docs(n: int, words: int, seed: int = 7) -> tuple[list[SearchDocument], list[str]]:
    rng = random.Random(seed)
    vocab = vocabulary(rng, 30_000)
    weights = [1.0 / (i + 1) for i in range(len(vocab))]  # Zipf
    cum, acc = [], 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    docs = []
    story = 0
    for i in range(n):
        body = rng.choices(vocab, cum_weights=cum, k=max(20, int(rng.gauss(words, words / 4))))
        for _ in range(rng.randint(0, 4)):
            body.insert(rng.randrange(len(body)), rng.choice(NAMES))
        if rng.random() < 0.05:
            body.insert(rng.randrange(len(body)), "article 5")
        if rng.random() < 0.3:
            story += 1
        docs.append(SearchDocument(
            id=str(i + 1), url=f"https://example.org/a/{i + 1}",
            title=" ".join(rng.choices(vocab[:3000], k=rng.randint(5, 12)) + [rng.choice(NAMES)]).capitalize(),
            text=" ".join(body), source=rng.choice(SOURCES),
            language=rng.choices(["en", "uk", "ru", "de", "fr"], [70, 10, 10, 5, 5])[0],
            author=None, published_at=START + timedelta(seconds=rng.randrange(DAYS * 86400)),
            topics=rng.sample(TOPICS, rng.randint(0, 3)), story_id=f"s{story}" if rng.random() < 0.7 else None,
            is_duplicate=rng.random() < 0.1))
    return docs, vocab


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
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="number of synthetic articles (default 100000)")
    ap.add_argument("--words", type=int, default=400, help="mean words per article (default 400)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--upsert-sample", type=int, default=5000, help="articles re-sent through upsert() in batches")
    ap.add_argument("--dir", default=None, help="directory for the index file (default: a temp dir)")
    args = ap.parse_args()

    t = time.perf_counter()
    docs, vocab = make_docs(args.n, args.words)
    print(f"generated {len(docs):,} articles (~{args.words} words) in {time.perf_counter() - t:.1f}s")

    tmp = Path(args.dir or tempfile.mkdtemp(prefix="search-bench-"))
    be = FTS5Backend(tmp / "bench.sqlite")
    t = time.perf_counter()
    be.reindex(iter(docs))
    dt = time.perf_counter() - t
    print(f"index (reindex, bulk):      {len(docs) / dt:,.0f} docs/s  ({dt:.1f}s for {len(docs):,}; target >= 2,000)")

    sample = docs[: min(args.upsert_sample, len(docs))]
    t = time.perf_counter()
    for i in range(0, len(sample), 500):
        be.upsert(sample[i:i + 500])
    dt = time.perf_counter() - t
    print(f"upsert (batches of 500, replacing existing): {len(sample) / dt:,.0f} docs/s ({len(sample):,} docs)")

    rng = random.Random(11)
    queries = make_queries(rng, vocab, args.queries)
    for _, q in queries[:10]:  # warm the page cache
        be.search(q)

    search_t, timeline_t, totals = [], [], []
    for kind, q in queries:
        t = time.perf_counter()
        if kind == "timeline":
            be.timeline(q, "week" if rng.random() < 0.5 else "day")
            timeline_t.append(time.perf_counter() - t)
        else:
            res = be.search(q)
            search_t.append(time.perf_counter() - t)
            totals.append(res.total)

    whole_day, whole_week = [], []
    for text in ["", "nato", "zelensk*", "ceasefire -trump", "kyiv OR moscow"]:
        for interval, acc in (("day", whole_day), ("week", whole_week)):
            t = time.perf_counter()
            be.timeline(SearchQuery(text=text), interval)
            acc.append(time.perf_counter() - t)

    # Baseline: the same text queries, plain FTS5 on the same table (no filters, totals or snippets).
    con = be._con()  # noqa: SLF001 - benchmark only
    g = int(con.execute("SELECT value FROM search_meta WHERE key='generation'").fetchone()[0])
    plain_t, ours_t = [], []
    for _, q in queries:
        node = parse_query(q.text)
        if node is None:
            continue
        try:
            expr = fts_match_expression(node)
        except ValueError:
            continue
        t = time.perf_counter()
        con.execute(f"SELECT rowid FROM fts_{g} WHERE fts_{g} MATCH ? ORDER BY rank LIMIT 20", (expr,)).fetchall()
        plain_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        be.search(SearchQuery(text=q.text))
        ours_t.append(time.perf_counter() - t)

    print(f"search, {len(search_t)} mixed queries:     p50 {ms(pct(search_t, 50))}  p95 {ms(pct(search_t, 95))}  "
          f"max {ms(max(search_t))}  (target p95 <= 50 ms; median total {int(statistics.median(totals)):,})")
    print(f"timeline, {len(timeline_t)} mixed queries:   p50 {ms(pct(timeline_t, 50))}  p95 {ms(pct(timeline_t, 95))}")
    both = search_t + timeline_t
    print(f"all {len(both)} mixed queries:          p50 {ms(pct(both, 50))}  p95 {ms(pct(both, 95))}")
    print(f"timeline, whole range, by day:  max {ms(max(whole_day))}; by week: max {ms(max(whole_week))}  (target <= 100 ms)")
    print(f"same {len(plain_t)} text queries, no filters:")
    print(f"  plain FTS5 MATCH+rank LIMIT 20: p50 {ms(pct(plain_t, 50))}  p95 {ms(pct(plain_t, 95))}")
    print(f"  our search():                   p50 {ms(pct(ours_t, 50))}  p95 {ms(pct(ours_t, 95))}")
    print(f"  overhead ratio (ours / plain):  p50 {pct(ours_t, 50) / pct(plain_t, 50):.2f}x  "
          f"p95 {pct(ours_t, 95) / pct(plain_t, 95):.2f}x")
    size = sum(f.stat().st_size for f in tmp.glob("bench.sqlite*"))
    print(f"index size on disk: {size / 1e6:.0f} MB")
    be.close()
    if args.dir is None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
