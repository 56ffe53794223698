"""Quality of copy detection and story clustering on the labelled fixture sets.

Runs the `newsmon cluster` logic (`cluster_jsonl`) on tests/data/dedup,
tests/data/stories and the seed trio, scores each with
tests/data/dedup/score_clusters.py and prints the scores next to the targets
(copies P >= 0.99, R >= 0.97; stories pair-F1 >= 0.90, ARI >= 0.90; seed trio
one story).  `python benchmarks/cluster_eval.py [--json]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from tests.clustereval import TARGETS, evaluate  # noqa: E402  (shared with tests/test_stories.py)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = ap.parse_args(argv)
    res = evaluate()
    if args.json:
        print(json.dumps(res))
    else:
        for name in ("dedup", "stories"):
            r = res[name]
            flags = " ".join(f"{k} {r[k]:.3f}{'' if r[k] >= TARGETS[k] else ' (below target)'}" for k in TARGETS)
            print(f"{name:8s} {flags}")
        print(f"seed     {res['seed']['stories']} story(ies) for 3 articles, {res['seed']['copies']} copies")
    ok = all(res[n][k] >= TARGETS[k] for n in ("dedup", "stories") for k in TARGETS) and res["seed"]["stories"] == 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
