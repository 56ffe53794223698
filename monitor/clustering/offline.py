"""Offline clustering of a JSONL file: the engine behind `newsmon cluster`.

One job: read articles from JSONL, run them through `StoryEngine` in published
order and write one `{"id", "story_id", "duplicate_of"}` line per input line.
No database. Used by researchers and by `benchmarks/cluster_eval.py`.

Bad input is reported, never fatal: malformed lines and lines without an id
are skipped with their line number on stderr; a repeated id keeps the first
occurrence (reported); empty, very short and non-English texts are clustered
like any other (they simply match little); texts longer than
`ClusterSettings.max_text_chars` are only read that far for shingles and terms.
Articles without a usable `published` date are processed after all dated ones,
in input order (the engine places them at the latest time seen).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO, Callable

from monitor.stages.dates import parse_datetime

from .engine import ClusterItem, ClusterSettings, StoryEngine


def read_items(lines, report: Callable[[str], None]) -> tuple[list[ClusterItem], dict]:
    """Parse JSONL lines into items (first occurrence of an id wins); problems go to `report`."""
    items: list[ClusterItem] = []
    seen: set[str] = set()
    stats = {"lines": 0, "malformed": 0, "duplicate_ids": 0, "missing_dates": 0}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        stats["lines"] += 1
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            item_id = row.get("id")
            if item_id is None or (isinstance(item_id, str) and not item_id.strip()):
                raise ValueError("missing id")
            item_id = str(item_id)
        except ValueError as e:   # json.JSONDecodeError is a ValueError
            stats["malformed"] += 1
            report(f"line {n}: skipped, malformed: {e}")
            continue
        if item_id in seen:
            stats["duplicate_ids"] += 1
            report(f"line {n}: skipped, duplicate id {item_id!r} (first occurrence kept)")
            continue
        seen.add(item_id)
        published = parse_datetime(row.get("published"))
        if published is None:
            stats["missing_dates"] += 1
        def s(key):
            v = row.get(key)
            return v if isinstance(v, str) else ("" if v is None else str(v))
        items.append(ClusterItem(id=item_id, url=s("url"), source=s("source"), title=s("title"),
                                 text=s("text"), published=published))
    return items, stats


def processing_order(items: list[ClusterItem]) -> list[ClusterItem]:
    """Published order; undated items last, in input order (sort is stable)."""
    far = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(items, key=lambda it: (it.published is None, it.published or far))


def cluster_jsonl(input_path, output: IO[str] | str | None = None, settings: ClusterSettings | None = None,
                  *, report: Callable[[str], None] | None = None, progress: bool = False) -> dict:
    """Cluster a JSONL file; write decisions to `output` (path or text stream) in input order; return stats."""
    report = report or (lambda msg: print(msg, file=sys.stderr))
    with open(input_path, encoding="utf-8", errors="replace") as f:
        items, stats = read_items(f, report)
    engine = StoryEngine(settings)
    decisions = {}
    ordered = processing_order(items)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(ordered), unit="article", desc="clustering", file=sys.stderr, leave=False)
    for item in ordered:
        decisions[item.id] = engine.add(item)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    close = False
    if output is None:
        out = sys.stdout
    elif isinstance(output, str) or hasattr(output, "__fspath__"):
        out = open(output, "w", encoding="utf-8")
        close = True
    else:
        out = output
    try:
        for item in items:
            d = decisions[item.id]
            out.write(json.dumps({"id": item.id, "story_id": d.story_id, "duplicate_of": d.duplicate_of},
                                 ensure_ascii=False) + "\n")
    finally:
        if close:
            out.close()
    stats.update({
        "articles": len(items),
        "stories": len({d.story_id for d in decisions.values()}),
        "copies": sum(1 for d in decisions.values() if d.duplicate_of),
        "exact_copies": sum(1 for d in decisions.values() if d.duplicate_method == "exact-hash"),
    })
    return stats
