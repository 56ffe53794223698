"""`newsmon cluster`: JSONL in, one decision line per input, bad input reported not fatal."""

import json
from pathlib import Path

from click.testing import CliRunner

from monitor.cli.stories import cluster as cluster_command
from monitor.clustering.offline import cluster_jsonl

DATA = Path(__file__).parent / "data"
SEED = [(DATA / "seed" / f"article-{n}.txt").read_text(encoding="utf-8") for n in (1, 2, 3)]


def _row(id_, text, published="2025-02-10T10:00:00Z", title="t"):
    return json.dumps({"id": id_, "url": f"https://x.example/{id_}", "source": "x.example", "title": title,
                       "text": text, "published": published})


def _run(tmp_path, lines):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    msgs = []
    stats = cluster_jsonl(inp, str(out), report=msgs.append)
    rows = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    return rows, stats, msgs


def test_output_one_line_per_input_in_input_order(tmp_path):
    lines = [_row("c", SEED[2], "2025-02-11T10:00:00Z"), _row("a", SEED[0], "2025-02-10T10:00:00Z"),
             _row("b", SEED[1], "2025-02-10T20:00:00Z"), _row("a2", SEED[0], "2025-02-12T10:00:00Z")]
    rows, stats, _ = _run(tmp_path, lines)
    assert [r["id"] for r in rows] == ["c", "a", "b", "a2"]
    assert set(rows[0]) == {"id", "story_id", "duplicate_of"}
    by = {r["id"]: r for r in rows}
    assert by["a2"]["duplicate_of"] == "a"     # processed in published order: "a" is the original
    assert {r["story_id"] for r in rows} == {"a"}
    assert stats["copies"] == 1


def test_malformed_lines_and_duplicate_ids_are_reported_and_skipped(tmp_path):
    lines = [_row("a", SEED[0]), "{not json", '["a list"]', '{"title": "no id"}', _row("a", SEED[1]),
             _row("b", SEED[2])]
    rows, stats, msgs = _run(tmp_path, lines)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert stats["malformed"] == 3 and stats["duplicate_ids"] == 1
    assert any(m.startswith("line 2:") for m in msgs)
    assert any(m.startswith("line 5:") and "duplicate id" in m for m in msgs)


def test_empty_short_non_english_and_missing_dates(tmp_path):
    german = ("Die Bundesregierung hat am Mittwoch neue Hilfen für die Ukraine beschlossen. "
              "Der Kanzler sagte in Berlin, man stehe fest an der Seite Kiews.")
    lines = [_row("empty", ""), _row("short", "Breaking."), _row("de", german, title="Neue Hilfen"),
             _row("nodate", SEED[1], published=None), _row("baddate", SEED[2], published="yesterday"),
             _row("a", SEED[0])]
    rows, stats, _ = _run(tmp_path, lines)
    by = {r["id"]: r for r in rows}
    assert len(rows) == 6 and stats["missing_dates"] == 2
    assert by["empty"]["duplicate_of"] is None and by["short"]["duplicate_of"] is None
    assert by["de"]["story_id"] == "de"                    # shares nothing with the English seed
    assert by["nodate"]["story_id"] == by["baddate"]["story_id"] == "a"   # undated: processed last


def test_huge_text_is_capped(tmp_path):
    big = (SEED[0] + "\n") * (5_000_000 // len(SEED[0]) + 1)
    assert len(big) >= 5_000_000
    rows, stats, _ = _run(tmp_path, [_row("big", big), _row("a", SEED[0], "2025-02-10T11:00:00Z")])
    assert len(rows) == 2
    assert rows[1]["duplicate_of"] == "big"   # its text is (contained in) the capped prefix


def test_click_command_writes_output_and_stats(tmp_path):
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join([_row("a", SEED[0]), "oops", _row("b", SEED[1])]) + "\n", encoding="utf-8")
    res = CliRunner().invoke(cluster_command, [str(inp), "--output", str(out), "--json-stats"])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 2
    assert "line 2" in res.output
    stats = json.loads([l for l in res.output.splitlines() if l.startswith("{")][-1])
    assert stats["articles"] == 2 and stats["malformed"] == 1
