"""Quality of copy detection and story clustering on the labelled fixture sets.

Runs the `newsmon cluster` logic (`cluster_jsonl`) on tests/data/dedup,
tests/data/stories and the seed trio, scores each with
tests/data/dedup/score_clusters.py and prints the scores next to the targets
(copies P >= 0.99, R >= 0.97; stories pair-F1 >= 0.90, ARI >= 0.90; seed trio
one story).  `python benchmarks/cluster_eval.py [--json]`.

Thresholds were tuned on the *tuning* part of each set; the *check* part is kept aside: items
whose id number is divisible by 5 (stories `s-005`, `s-010`, ...; dedup ids are hex, `d-<hex>`,
so the number is int(hex, 16)). Every run clusters the whole set (the engine needs the stream)
and scores it three ways: all items, tuning items only, check items only (pairs among them).
A baseline — datasketch MinHashLSH for copies, a TF-IDF nearest neighbour for stories
(benchmarks/cluster_baseline.py) — is scored on the same sets in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from tests.clustereval import TARGETS, evaluate, evaluate_parts  # noqa: E402  (shared with tests/test_stories.py)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = ap.parse_args(argv)
    res = evaluate()
    parts = evaluate_parts()
    if args.json:
        print(json.dumps({**res, "parts": parts}))
    else:
        for key, r in parts.items():
            print(f"{key:26s} " + " ".join(f"{k} {r[k]:.3f}" for k in TARGETS))
        for name in ("dedup", "stories"):
            r = res[name]
            flags = " ".join(f"{k} {r[k]:.3f}{'' if r[k] >= TARGETS[k] else ' (below target)'}" for k in TARGETS)
            print(f"{name:8s} {flags}")
        print(f"seed     {res['seed']['stories']} story(ies) for 3 articles, {res['seed']['copies']} copies")
    ok = all(res[n][k] >= TARGETS[k] for n in ("dedup", "stories") for k in TARGETS) and res["seed"]["stories"] == 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
