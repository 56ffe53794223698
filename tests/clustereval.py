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


def score_set(name: str, settings: ClusterSettings | None = None) -> dict:
    """Cluster tests/data/<name>/items.jsonl and score against its gold.jsonl."""
    folder = DATA / name
    with tempfile.TemporaryDirectory() as tmp:
        pred = Path(tmp) / "pred.jsonl"
        cluster_jsonl(folder / "items.jsonl", str(pred), settings, report=lambda m: None)
        return run_scorer(folder / "gold.jsonl", pred)


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
