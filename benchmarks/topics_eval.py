"""Topic tagging quality and speed: newsmon's rules against keyword baselines, in one run.

    python benchmarks/topics_eval.py [--feeds feeds.yaml] [--repeat 5] [--json]

Sets (all under tests/data/topics/, see its README):
  dev        fixture ids not divisible by 5 plus items_extra.jsonl — the rules were tuned on these
  check      fixture ids divisible by 5 — kept aside, never used for tuning
  heldaside  heldaside_items.jsonl — written by the topics helper, never used for tuning

Per set and topic: precision, recall and F1 of
  newsmon    the packaged rules (or --feeds)
  keywords   the fixture README's reference tagger: "NATO" >= 2 or "the alliance"; Ukrain* and
             aid/assistance; Trump and a foreign-affairs word
  title2     issue 10's quick rule: the topic word in the title or at least twice in the text
             (nato: NATO; ukraine-aid: Ukrain* and aid; trump-foreign-policy: Trump)
Timing: tagging time per article (median of --repeat passes over every item), CPU and wall,
with the ratio to the keywords tagger measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.config import default_topics, load_feeds_config  # noqa: E402
from monitor.stages.topics import TopicTagger  # noqa: E402

DATA = ROOT / "tests" / "data" / "topics"
TOPICS = ("nato", "ukraine-aid", "trump-foreign-policy")


@dataclass
class Item:
    id: str
    title: str
    text: str


def _jsonl(path: Path) -> list[Item]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(Item(d["id"], d.get("title") or "", d.get("text") or ""))
    return out


def load_sets() -> tuple[dict[str, list[Item]], dict[str, list[str]]]:
    gold: dict[str, list[str]] = {}
    for name in ("gold.json", "gold_extra.json", "heldaside_gold.json"):
        gold.update(json.loads((DATA / name).read_text(encoding="utf-8")))
    fixture = _jsonl(DATA / "items.jsonl")
    num = lambda i: int(i.id.rsplit("-", 1)[1])  # noqa: E731
    sets = {
        "dev": [i for i in fixture if num(i) % 5] + _jsonl(DATA / "items_extra.jsonl"),
        "check": [i for i in fixture if num(i) % 5 == 0],
        "heldaside": _jsonl(DATA / "heldaside_items.jsonl"),
    }
    return sets, gold


# ------------------------------------------------------------------ baselines

_FOREIGN = re.compile(
    r"\b(foreign|allies|ally|alliance|NATO|tariffs?|trade|diplomac\w*|diplomat\w*|summit|Putin|Russia\w*|"
    r"Ukrain\w*|China|Chinese|Beijing|Iran|Israel\w*|Gaza|Europe\w*|sanctions?|treaty|embassy|ambassador|"
    r"Taliban|Afghanistan|North Korea|Greenland|Panama|Mexico|Canada)\b"
)


def keywords_tagger(title: str, text: str) -> list[str]:
    both = f"{title}\n{text}"
    out = []
    if len(re.findall(r"\bNATO\b", both)) >= 2 or re.search(r"\bthe alliance\b", both, re.I):
        out.append("nato")
    if re.search(r"\bUkrain", both) and re.search(r"\b(aid|assistance)\b", both, re.I):
        out.append("ukraine-aid")
    if re.search(r"\bTrump\b", both) and _FOREIGN.search(both):
        out.append("trump-foreign-policy")
    return out


def _title_or_twice(pattern: str, title: str, text: str, flags: int = 0) -> bool:
    rx = re.compile(pattern, flags)
    return bool(rx.search(title)) or len(rx.findall(text)) >= 2


def title2_tagger(title: str, text: str) -> list[str]:
    out = []
    if _title_or_twice(r"\bNATO\b", title, text):
        out.append("nato")
    if _title_or_twice(r"\bUkrain\w*", title, text) and _title_or_twice(r"\baid\b", title, text, re.I):
        out.append("ukraine-aid")
    if _title_or_twice(r"\bTrump\b", title, text):
        out.append("trump-foreign-policy")
    return out


# ------------------------------------------------------------------ scoring


def prf(pred: dict[str, list[str]], gold: dict[str, list[str]], items: list[Item]) -> dict[str, dict[str, float]]:
    out = {}
    for t in TOPICS:
        tp = fp = fn = 0
        for it in items:
            g, p = t in gold[it.id], t in pred[it.id]
            tp += g and p
            fp += p and not g
            fn += g and not p
        p_ = tp / (tp + fp) if tp + fp else (1.0 if tp + fn == 0 else 0.0)
        r_ = tp / (tp + fn) if tp + fn else 1.0
        f_ = 2 * p_ * r_ / (p_ + r_) if p_ + r_ else 0.0
        out[t] = {"p": p_, "r": r_, "f1": f_, "tp": tp, "fp": fp, "fn": fn}
    out["macro"] = {"f1": sum(out[t]["f1"] for t in TOPICS) / len(TOPICS)}
    return out


def timing(fn: Callable[[str, str], list[str]], items: list[Item], repeat: int) -> dict[str, float]:
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        for it in items:
            fn(it.title, it.text)
        cpu.append((time.process_time() - c0) / len(items) * 1000)
        wall.append((time.perf_counter() - w0) / len(items) * 1000)
    return {"cpu_ms": statistics.median(cpu), "wall_ms": statistics.median(wall)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", help="feeds.yaml whose topic rules to evaluate (default: the packaged rules)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    rules = load_feeds_config(args.feeds).topics if args.feeds else default_topics()
    tagger = TopicTagger(rules)
    taggers: dict[str, Callable[[str, str], list[str]]] = {
        "newsmon": tagger.tag, "keywords": keywords_tagger, "title2": title2_tagger,
    }
    sets, gold = load_sets()
    results: dict[str, dict] = {}
    for set_name, items in sets.items():
        results[set_name] = {"n": len(items)}
        for name, fn in taggers.items():
            pred = {it.id: fn(it.title, it.text) for it in items}
            results[set_name][name] = prf(pred, gold, items)
    every = [it for items in sets.values() for it in items]
    # Long real articles dominate the time: also time the full fixture on its own.
    speed = {name: timing(fn, every, args.repeat) for name, fn in taggers.items()}
    # What the pipeline runs: tags plus the explanation stored with each tag.
    speed["newsmon+explain"] = timing(lambda t, x: [m.to_dict() for m in tagger.assigned(t, x)], every, args.repeat)
    speed["n_items"] = len(every)
    speed["mean_words"] = statistics.mean(len(it.text.split()) for it in every)
    results["timing"] = speed

    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for set_name, items in sets.items():
        r = results[set_name]
        print(f"\n== {set_name} (n={r['n']})")
        print(f"{'topic':<22} " + "   ".join(f"{n:>17}" for n in taggers))
        print(f"{'':<22} " + "   ".join(f"{'P     R     F1':>17}" for _ in taggers))
        for t in TOPICS:
            cells = "   ".join(f"{r[n][t]['p']:.2f}  {r[n][t]['r']:.2f}  {r[n][t]['f1']:.2f}" for n in taggers)
            print(f"{t:<22} {cells}")
        print(f"{'macro-F1':<22} " + "   ".join(f"{r[n]['macro']['f1']:>17.3f}" for n in taggers))
    base = speed["keywords"]
    print(f"\n== tagging time per article ({speed['n_items']} items, mean {speed['mean_words']:.0f} words, "
          f"median of {args.repeat})")
    for name in (*taggers, "newsmon+explain"):
        s = speed[name]
        print(f"{name:<16} cpu {s['cpu_ms']:.3f} ms  wall {s['wall_ms']:.3f} ms  "
              f"(x{s['cpu_ms'] / base['cpu_ms']:.1f} keywords cpu)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
