"""Speed and memory of dedup + story clustering on a synthetic stream, beside plain baselines.

The corpus is generated deterministically (random.Random(20261128)) from the
real texts under tests/data (extraction ground truth, dedup and stories sets,
seed): each article mixes paragraphs of two or three base texts, substitutes
~15% of its words, shuffles or cuts paragraphs; one in ten is a syndicated copy
(headline, dateline, cut ending, footer, typo) of a recent article and one in
fifty an exact re-post. Published times are spread over n / per_day days
(default 2,000 articles a day: the 7-day window holds ~14,000 articles at any n,
as a real deployment's would, instead of growing with n).

Reports, CPU time (process_time) beside wall time, per article over the last
1,000 articles before each mark (10K, 100K, 1M, n):
- features (`compute_features`: in ingest they run in the extraction processes),
- decide (`StoryEngine.add` with features given: what the storing process pays),
- both together;
the same stream's first `--baseline-n` articles through `cluster_baseline.BaselineClusterer`
(datasketch MinHashLSH + TF-IDF nearest neighbour) and our engine's cost at that mark;
state sizes at each mark (the vocabulary must not grow with n), peak RSS, the engine state
size (tracemalloc after restore, per window article) and the time to rebuild it with
restore(), as a restarted worker would.

The baseline runs first, in a child process (spawned, so it starts empty): its memory never
counts in our peak RSS, and its own peak RSS is reported beside it.

`--warmup` (for 1M-article runs): every article is still generated (the generator is
sequential, ~0.06 ms an article), but only the last `--warmup-days` days of articles before
the first measured batch (default 3 x the window) go through the engine; earlier ones are
skipped. What this measures: the cost per article with the window full at a realistic load
and the IDF counted over its latest originals, i.e. the steady state at n. What it does not:
the same decisions as a full run. Stories kept alive (by a member at least every
`window_days`) through the skipped span exist only in a full run, and this stream's stories
mix a fixed pool of base texts, so they live long: a 7-day warm-up at 30K articles gave the
full run's copy decision for 999 of the last 1,000 articles but the same story method for
876 and same-story pairs at P 0.74 / R 0.83 against it. The window, IDF and vocabulary
sizes, which set the cost per article, are built the same way. Marks whose measured batch
falls in the skipped span are not reported; the baseline is then compared with our cost at
n (both per article with a full window: neither grows with n once the window is full).

    python benchmarks/cluster_perf.py [--n 100000] [--per-day 2000] [--baseline-n 20000]
                                      [--warmup [--warmup-days 21]]
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

from monitor.clustering.engine import ClusterItem, ClusterSettings, StoryEngine, compute_features


def _load_baseline():
    import importlib.util

    spec = importlib.util.spec_from_file_location("cluster_baseline", Path(__file__).resolve().parent / "cluster_baseline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.BaselineClusterer

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


def generate(n: int, seed: int = 20261128, per_day: float = 2000.0):
    """Yield n ClusterItems (deterministic)."""
    rnd = random.Random(seed)
    bases = base_texts()
    vocab = sorted({w for paras in bases for p in paras for w in p.split() if w.isalpha()})
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    step = 86400.0 / per_day
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


BATCH = 1000


def _marks(n: int, extra: int) -> list[int]:
    return sorted({m for m in (10_000, 100_000, 1_000_000, n, extra) if 0 < m <= n})


def _baseline_run(baseline_n: int, per_day: float, window_days: float) -> dict:
    """The baseline's cost per article over the last BATCH of `baseline_n` (run in a child process)."""
    base = _load_baseline()(window_days=window_days)
    cpu, wall = time.process_time, time.perf_counter
    b_cpu = b_wall = 0.0
    for i, item in enumerate(generate(baseline_n, per_day=per_day), 1):
        c0, w0 = cpu(), wall()
        base.add(item.id, item.title, item.text, item.published)
        if i > baseline_n - BATCH:
            b_cpu += cpu() - c0
            b_wall += wall() - w0
    return {"articles": baseline_n,
            "baseline_cpu_ms_per_article": round(b_cpu / BATCH * 1000, 3),
            "baseline_wall_ms_per_article": round(b_wall / BATCH * 1000, 3),
            "baseline_peak_rss_mb": round(_rss(), 1)}


def _baseline_in_child(baseline_n: int, per_day: float, window_days: float) -> dict:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_baseline_run, baseline_n, per_day, window_days).result()


def run(n: int, per_day: float, baseline_n: int, warmup_days: float | None = None) -> dict:
    settings = ClusterSettings()
    marks = _marks(n, baseline_n)
    # With warm-up, articles before `start` are generated but not clustered (module docstring).
    start = 0
    if warmup_days is not None:
        start = max(0, n - BATCH - int(warmup_days * per_day))
        marks = [m for m in marks if m - BATCH >= start]
    engine = StoryEngine(settings)
    window_items: deque = deque()
    acc = {m: [0.0, 0.0, 0.0, 0.0] for m in marks}   # features cpu, decide cpu, features wall, decide wall
    states = {}
    cpu = time.process_time
    wall = time.perf_counter
    baseline = {}
    if baseline_n:
        baseline = _baseline_in_child(baseline_n, per_day, settings.window_days)
        print(f"  baseline at {baseline_n}: {baseline}", file=sys.stderr, flush=True)

    for i, item in enumerate(generate(n, per_day=per_day), 1):
        if i <= start:
            continue
        c0, w0 = cpu(), wall()
        feats = compute_features(item.title, item.text, settings)
        c1, w1 = cpu(), wall()
        d = engine.add(item, feats)
        c2, w2 = cpu(), wall()
        window_items.append((item, d))
        cutoff = item.published - timedelta(days=settings.window_days)
        while window_items[0][0].published < cutoff:
            window_items.popleft()
        for m in marks:
            if m - BATCH < i <= m:
                a = acc[m]
                a[0] += c1 - c0
                a[1] += c2 - c1
                a[2] += w1 - w0
                a[3] += w2 - w1
            if i == m:
                states[m] = engine.stats()
                a = acc[m]
                print(f"  mark {m}: cpu features {a[0] / BATCH * 1000:.3f} decide {a[1] / BATCH * 1000:.3f} "
                      f"total {(a[0] + a[1]) / BATCH * 1000:.3f} ms/article, wall total "
                      f"{(a[2] + a[3]) / BATCH * 1000:.3f} ms; state {states[m]}, rss {_rss():.0f} MB",
                      file=sys.stderr, flush=True)
        if i % 10_000 == 0:
            print(f"  {i} articles, state {engine.stats()}, rss {_rss():.0f} MB", file=sys.stderr, flush=True)

    # restart: a new engine rebuilt from the stored decisions of the window,
    # timed without tracemalloc, then once more under tracemalloc to size its state
    del engine
    t0 = time.perf_counter()
    fresh = StoryEngine(settings)
    for item, d in window_items:
        fresh.restore(item, d)
    restore_s = time.perf_counter() - t0
    del fresh
    tracemalloc.start()
    fresh = StoryEngine(settings)
    for item, d in window_items:
        fresh.restore(item, d)
    state_mb = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    per = lambda x: round(x / BATCH * 1000, 3)  # noqa: E731
    if baseline:
        at = baseline_n if baseline_n in acc else n
        ours = acc[at]
        baseline["ours_at"] = at
        baseline["ours_cpu_ms_per_article"] = per(ours[0] + ours[1])
        baseline["ratio_ours_to_baseline_cpu"] = round((ours[0] + ours[1]) / BATCH * 1000
                                                       / max(baseline["baseline_cpu_ms_per_article"], 1e-9), 3)
    return {
        "articles": n,
        "articles_per_day": per_day,
        "clustered_from": start + 1,
        "warmup_days": warmup_days,
        "window_days": settings.window_days,
        "per_article_ms_at": {str(m): {"cpu_features": per(a[0]), "cpu_decide": per(a[1]),
                                       "cpu_total": per(a[0] + a[1]), "wall_total": per(a[2] + a[3])}
                              for m, a in acc.items()},
        "state_at": {str(m): st for m, st in states.items()},
        "baseline": baseline,
        "peak_rss_mb": round(_rss(), 1),
        "window_articles_at_end": len(window_items),
        "engine_state_mb_after_restore": round(state_mb, 1),
        "engine_state_kb_per_window_article": round(state_mb * 1024 / max(1, len(window_items)), 1),
        "restore_seconds": round(restore_s, 2),
        "restore_ms_per_article": round(restore_s / max(1, len(window_items)) * 1000, 3),
    }


def _rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="articles to generate (default 100000)")
    ap.add_argument("--per-day", type=float, default=2000.0, help="articles per day of publication time (default 2000)")
    ap.add_argument("--baseline-n", type=int, default=20_000,
                    help="articles of the same stream run through the baseline (0: skip; default 20000)")
    ap.add_argument("--warmup", action="store_true",
                    help="cluster only the last --warmup-days days before the measured batch (see the docstring)")
    ap.add_argument("--warmup-days", type=float, default=None,
                    help="days of articles clustered before the measured batch with --warmup (default 3 x the window)")
    args = ap.parse_args(argv)
    warm = None
    if args.warmup:
        warm = args.warmup_days if args.warmup_days is not None else 3 * ClusterSettings().window_days
    res = run(args.n, args.per_day, min(args.baseline_n, args.n), warm)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
