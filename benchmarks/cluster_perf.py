"""Speed and memory of dedup + story clustering on a synthetic 100,000-article stream.

The corpus is generated deterministically (random.Random(20261128)) from the
real texts under tests/data (extraction ground truth, dedup and stories sets,
seed): each article mixes paragraphs of two or three base texts, substitutes
~15% of its words, shuffles or cuts paragraphs; one in ten is a syndicated copy
(headline, dateline, cut ending, footer, typo) of a recent article and one in
fifty an exact re-post. Published times are spread evenly over 60 days
(window 7 days: ~11,700 articles in memory at 100K).

Reports per-article add() time around 10K and 100K articles processed, peak
memory (ru_maxrss; tracemalloc of the engine state after restore, in total and
per article of the window), and the time to rebuild the in-memory state with
restore() from the decisions of the last window, as a restarted worker would
(timed without tracemalloc, which slows allocation-heavy code about 2x).  `python benchmarks/cluster_perf.py [--n 100000]`.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
import tracemalloc
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

from monitor.clustering.engine import ClusterItem, ClusterSettings, StoryEngine

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def base_texts() -> list[list[str]]:
    texts = [r["articleBody"] for r in json.load(open(DATA / "extraction" / "ground-truth.json", encoding="utf-8")).values()]
    for name in ("dedup", "stories"):
        texts += [json.loads(l)["text"] for l in open(DATA / name / "items.jsonl", encoding="utf-8")]
    texts += [(DATA / "seed" / f"article-{n}.txt").read_text(encoding="utf-8") for n in (1, 2, 3)]
    out = []
    for t in texts:
        paras = [p.strip() for p in t.split("\n") if len(p.split()) >= 5]
        if len(paras) >= 2:
            out.append(paras)
    return out


def generate(n: int, seed: int = 20261128, days: float = 60.0):
    """Yield n ClusterItems (deterministic)."""
    rnd = random.Random(seed)
    bases = base_texts()
    vocab = sorted({w for paras in bases for p in paras for w in p.split() if w.isalpha()})
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    step = days * 86400.0 / n
    recent: deque = deque(maxlen=500)
    for i in range(n):
        published = t0 + timedelta(seconds=i * step + rnd.uniform(-600, 600))
        r = rnd.random()
        if recent and r < 0.02:
            src = rnd.choice(recent)
            title, text = src.title, src.text
        elif recent and r < 0.12:
            src = rnd.choice(recent)
            paras = src.text.split("\n")
            cut = paras[: max(1, len(paras) - rnd.randint(0, 2))]
            text = "\n".join(["LONDON (Wire) -"] + cut + ["Read more at wire.example. (c) 2026"])
            text = text.replace(" the ", " teh ", 1)
            title = "Report: " + src.title
        else:
            paras = []
            for b in rnd.sample(bases, rnd.randint(2, 3)):
                k = rnd.randint(1, len(b))
                paras += b[:k] if rnd.random() < 0.5 else rnd.sample(b, k)
            if rnd.random() < 0.3:
                rnd.shuffle(paras)
            paras = paras[: rnd.randint(3, 14)]
            words = " \n ".join(paras).split(" ")
            for j in range(len(words)):
                if rnd.random() < 0.15:
                    words[j] = rnd.choice(vocab)
            text = " ".join(words).replace(" \n ", "\n")
            title = " ".join(rnd.choice(vocab) for _ in range(rnd.randint(5, 11)))
        item = ClusterItem(id=f"p{i:06d}", url=f"https://src{i % 97}.example/{i}", source=f"src{i % 97}.example",
                           title=title, text=text, published=published)
        recent.append(item)
        yield item


def run(n: int) -> dict:
    settings = ClusterSettings()
    marks = sorted({min(n, 10_000), n})
    engine = StoryEngine(settings)
    window_items: deque = deque()
    per_mark: dict[int, float] = {}
    batch = max(1, min(1000, n // 10))
    t_batch, t_total = 0.0, 0.0
    gen_t = 0.0
    # tracemalloc slows every allocation ~2x; only ru_maxrss during the timed run
    it = generate(n)
    for i in range(1, n + 1):
        g0 = time.perf_counter()
        item = next(it)
        g1 = time.perf_counter()
        d = engine.add(item)
        dt = time.perf_counter() - g1
        gen_t += g1 - g0
        t_total += dt
        window_items.append((item, d))
        cutoff = item.published - timedelta(days=settings.window_days)
        while window_items[0][0].published < cutoff:
            window_items.popleft()
        for m in marks:
            if m - batch < i <= m:
                per_mark[m] = per_mark.get(m, 0.0) + dt
        if i % 10_000 == 0:
            print(f"  {i} articles, {t_total / i * 1000:.2f} ms/article so far, state {engine.stats()}",
                  file=sys.stderr, flush=True)
    stats = engine.stats()

    # restart: a new engine rebuilt from the stored decisions of the window,
    # timed without tracemalloc, then once more under tracemalloc to size its state
    del engine
    t0 = time.perf_counter()
    fresh = StoryEngine(settings)
    for item, d in window_items:
        fresh.restore(item, d)
    restore_plain_s = time.perf_counter() - t0
    del fresh
    tracemalloc.start()
    t0 = time.perf_counter()
    fresh = StoryEngine(settings)
    for item, d in window_items:
        fresh.restore(item, d)
    restore_s = time.perf_counter() - t0
    state_mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    return {
        "articles": n,
        "ms_per_article_at": {str(m): round(per_mark[m] / batch * 1000, 3) for m in marks},
        "ms_per_article_overall": round(t_total / n * 1000, 3),
        "batch_size_for_marks": batch,
        "state_at_end": stats,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "restore_articles": len(window_items),
        "restore_seconds": round(restore_plain_s, 2),
        "restore_seconds_with_tracemalloc": round(restore_s, 2),
        "engine_state_mb_after_restore": round(state_mb, 1),
        "engine_state_kb_per_window_article": round(state_mb * 1024 / max(1, len(window_items)), 1),
        "restore_ms_per_article": round(restore_plain_s / max(1, len(window_items)) * 1000, 3),
        "restore_ms_per_article_with_tracemalloc": round(restore_s / max(1, len(window_items)) * 1000, 3),
        "generation_seconds": round(gen_t, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="articles to generate (default 100000)")
    args = ap.parse_args(argv)
    res = run(args.n)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
