"""Score copy detection and story clustering on the labelled sets in tests/data (shared by tests and benchmarks/cluster_eval.py).

Runs the `newsmon cluster` logic (`cluster_jsonl`) on tests/data/dedup, tests/data/stories and
the seed trio and scores each with tests/data/dedup/score_clusters.py (the fixture's own scorer).
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tempfile
from pathlib import Path

from monitor.clustering.engine import ClusterSettings
from monitor.clustering.offline import cluster_jsonl

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
TARGETS = {"pairF1": 0.90, "ARI": 0.90, "copyP": 0.99, "copyR": 0.97}


def _scorer():
    spec = importlib.util.spec_from_file_location("score_clusters", DATA / "dedup" / "score_clusters.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def is_check(item_id: str) -> bool:
    """The held-out part: id number divisible by 5 (decimal for s-NNN, hex for d-<hex>)."""
    prefix, num = item_id.split("-", 1)
    return int(num, 16 if prefix == "d" else 10) % 5 == 0


def _gold_subset(gold: Path, part: str | None, tmp: Path) -> Path:
    if part is None:
        return gold
    rows = [json.loads(line) for line in open(gold, encoding="utf-8")]
    keep = [r for r in rows if is_check(r["id"]) == (part == "check")]
    out = tmp / f"gold-{part}.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
    return out


def score_set(name: str, settings: ClusterSettings | None = None, part: str | None = None,
              baseline: bool = False) -> dict:
    """Cluster tests/data/<name>/items.jsonl, score against gold.jsonl (`part`: None, "tune" or "check").

    The whole set is always clustered (the engine needs the stream); `part` restricts scoring
    to the pairs among that part's items.
    """
    folder = DATA / name
    with tempfile.TemporaryDirectory() as tmp:
        pred = Path(tmp) / "pred.jsonl"
        if baseline:
            _baseline_predictions(folder / "items.jsonl", pred)
        else:
            cluster_jsonl(folder / "items.jsonl", str(pred), settings, report=lambda m: None)
        return run_scorer(_gold_subset(folder / "gold.jsonl", part, Path(tmp)), pred)


def _baseline_predictions(items: Path, pred: Path) -> None:
    """Predictions of benchmarks/cluster_baseline.py (MinHashLSH + TF-IDF nearest neighbour)."""
    spec = importlib.util.spec_from_file_location("cluster_baseline", ROOT / "benchmarks" / "cluster_baseline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from monitor.clustering.offline import processing_order, read_items

    with open(items, encoding="utf-8") as f:
        rows, _ = read_items(f, lambda m: None)
    base = mod.BaselineClusterer()
    out = {}
    for it in processing_order(rows):
        copy_of, story = base.add(it.id, it.title, it.text, it.published)
        out[it.id] = {"id": it.id, "story_id": story, "duplicate_of": copy_of}
    pred.write_text("".join(json.dumps(out[it.id]) + "\n" for it in rows), encoding="utf-8")


def evaluate_parts(settings: ClusterSettings | None = None) -> dict:
    """Scores on all items, the tuning part and the held-out check part: ours and the baseline's."""
    out = {}
    for who, base in (("newsmon", False), ("baseline", True)):
        for name in ("dedup", "stories"):
            for part in (None, "tune", "check"):
                out[f"{who}/{name}/{part or 'all'}"] = score_set(name, settings, part, baseline=base)
    return out


def run_scorer(gold: Path, pred: Path) -> dict:
    """Run score_clusters.py's main on the two files and parse its last line."""
    mod = _scorer()
    buf, err = io.StringIO(), io.StringIO()
    old_argv, old_out, old_err = sys.argv, sys.stdout, sys.stderr
    sys.argv, sys.stdout, sys.stderr = ["score_clusters.py", str(gold), str(pred)], buf, err
    try:
        mod.main()
    except SystemExit:
        pass
    finally:
        sys.argv, sys.stdout, sys.stderr = old_argv, old_out, old_err
    last = [l for l in buf.getvalue().splitlines() if l.startswith("stories pairF1")][-1]
    parts = last.replace("|", " ").split()
    return {"pairF1": float(parts[2]), "ARI": float(parts[4]), "copyP": float(parts[7]), "copyR": float(parts[9])}


def seed_trio(settings: ClusterSettings | None = None) -> dict:
    """The three seed articles as JSONL (no headline: the files are body text only); one story?"""
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "seed.jsonl", Path(tmp) / "out.jsonl"
        with open(inp, "w", encoding="utf-8") as f:
            for n in (1, 2, 3):
                text = (DATA / "seed" / f"article-{n}.txt").read_text(encoding="utf-8")
                f.write(json.dumps({"id": f"seed-{n}", "url": f"https://seed{n}.example/a", "source": f"seed{n}.example",
                                    "title": "", "text": text,
                                    "published": f"2025-02-1{n}T12:00:00Z"}) + "\n")
        cluster_jsonl(inp, str(out), settings, report=lambda m: None)
        rows = [json.loads(l) for l in open(out, encoding="utf-8")]
    return {"stories": len({r["story_id"] for r in rows}), "copies": sum(1 for r in rows if r["duplicate_of"])}


def evaluate(settings: ClusterSettings | None = None) -> dict:
    """Scores of both labelled sets and the seed trio."""
    return {"dedup": score_set("dedup", settings), "stories": score_set("stories", settings),
            "seed": seed_trio(settings)}
