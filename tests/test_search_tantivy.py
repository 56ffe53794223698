"""Tantivy backend beyond the shared contract: one writer across processes, the pointer swap, the
binding's traps, exact story collapse at scale, and the same answers as FTS5 on a generated corpus."""
from __future__ import annotations

import importlib.util

import os
import random
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from search import BackendUnavailable, SearchDocument, SearchQuery, open_backend
from search.tantivy_backend import TantivyBackend

ROOT = Path(__file__).resolve().parents[1]


def doc(i: int, title: str = "NATO summit", text: str = "Allies met.", **kw) -> SearchDocument:
    return SearchDocument(id=str(i), url=f"https://x.org/{i}", title=title, text=text, source="x.org",
                          published_at=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=i), **kw)


def child(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_reopen_registers_tokenizer_and_delete_by_id_works(tmp_path):
    be = TantivyBackend(tmp_path / "ix")
    be.upsert([doc(1, text="The summits were held."), doc(2)])
    be.close()
    again = TantivyBackend(tmp_path / "ix")  # a new open must register the stemming analyzer again
    assert {h.id for h in again.search(SearchQuery(text="summit", limit=10)).hits} == {"1", "2"}
    assert again.search(SearchQuery(text="held")).total == 1
    again.delete(["1"])  # a str term on the raw id field: an int term on a u64 field would do nothing
    again.upsert([doc(2, title="Replaced")])
    assert again.count() == 1
    assert again.search(SearchQuery(text="replaced")).total == 1
    again.close()


def test_second_process_waits_then_reports_clearly_and_sees_commits(tmp_path):
    path = tmp_path / "ix"
    TantivyBackend(path).close()
    owner = child(f"""
        import sys
        from datetime import datetime, timezone
        from search import SearchDocument
        from search.tantivy_backend import TantivyBackend
        be = TantivyBackend({str(path)!r})
        be.upsert([SearchDocument(id="7", url="u", title="Ceasefire talks", text="t", source="s.org")])
        print("ready", flush=True)
        sys.stdin.readline()  # keep the writer until told to stop
        be.close()
    """)
    try:
        assert owner.stdout.readline().strip() == "ready"
        other = TantivyBackend(path, lock_wait_s=0.5)
        assert other.search(SearchQuery(text="ceasefire")).total == 1  # readers reload on commit
        with pytest.raises(BackendUnavailable, match="writer in another process"):
            other.upsert([doc(1)])
        assert other.count() == 1  # nothing half-written
        other.close()
    finally:
        owner.communicate("stop\n", timeout=30)
    assert owner.returncode == 0
    be = TantivyBackend(path, lock_wait_s=5)  # the owner is gone: the writer is free again
    be.upsert([doc(1)])
    assert be.count() == 2
    be.close()


def test_reindex_in_other_process_swaps_pointer_and_keeps_live_writes(tmp_path):
    path = tmp_path / "ix"
    live = TantivyBackend(path)
    live.upsert([doc(i) for i in range(1, 4)])
    gen_before = (path / "CURRENT").read_text().strip()
    rebuild = child(f"""
        import sys
        from datetime import datetime, timezone
        from search import SearchDocument
        from search.tantivy_backend import TantivyBackend
        be = TantivyBackend({str(path)!r})
        def docs():
            for i in range(1, 4):
                if i == 2:
                    print("building", flush=True)
                    sys.stdin.readline()  # the live process writes while we build
                yield SearchDocument(id=str(i), url="u", title="Old copy", text="t", source="s.org")
        print(be.reindex(docs()), flush=True)
        be.close()
    """)
    assert rebuild.stdout.readline().strip() == "building"
    live.upsert([doc(3, title="Fresh headline"), doc(9, title="Late news")])  # after the reindex read 3? no: before
    live.delete(["1"])
    out, err = rebuild.communicate("go\n", timeout=60)
    assert rebuild.returncode == 0, err
    assert out.strip() == "3"
    assert (path / "CURRENT").read_text().strip() != gen_before
    assert not (path / "BUILDING").exists()
    assert live.count() == 3  # 2 and 3 from the rebuild, 9 from the journal, 1 deleted
    assert {h.id for h in live.search(SearchQuery(text="fresh")).hits} == {"3"}
    assert {h.id for h in live.search(SearchQuery(text="late")).hits} == {"9"}
    assert live.search(SearchQuery(text="nato")).total == 0
    live.upsert([doc(10)])  # the live process moved its writer to the new generation
    assert live.count() == 4
    live.close()


def test_marker_of_a_crashed_reindex_is_cleared(tmp_path):
    path = tmp_path / "ix"
    be = TantivyBackend(path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (path / "BUILDING").write_text(f"{dead.stdout.strip()} gen-000002\n")
    (path / "gen-000002").mkdir()
    be.upsert([doc(1)])  # must not journal for a dead builder forever
    assert not (path / "BUILDING").exists() and not (path / "gen-000002.journal").exists()
    assert be.reindex([doc(1), doc(2)]) == 2
    assert be.count() == 2
    be.close()


def _stories_corpus(n: int, seed: int) -> list[SearchDocument]:
    rng = random.Random(seed)
    words = ["nato", "summit", "aid", "kyiv", "tariffs", "ceasefire", "brussels", "sanctions"]
    out = []
    for i in range(1, n + 1):
        story = f"s{rng.randrange(n // 4)}" if rng.random() < 0.7 else None
        out.append(SearchDocument(
            id=str(i), url=f"https://x.org/{i}", title=" ".join(rng.sample(words, 2)),
            text=" ".join(rng.choices(words, k=12)), source=rng.choice(["a.com", "b.com", "c.com"]),
            language=rng.choice(["en", "de"]), topics=rng.sample(["nato", "aid", "trade"], rng.randint(0, 2)),
            published_at=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(60 * 24 * 60 * 60)),  # distinct: no ties in date order
            story_id=story, is_duplicate=rng.random() < 0.1))
    return out


def _matches(d: SearchDocument, q: SearchQuery) -> bool:
    words = set((d.title + " " + d.text).lower().split())
    ok = all(w in words for w in q.text.split()) if q.text else True
    if q.sources:
        ok &= d.source in q.sources
    if not q.include_duplicates:
        ok &= not d.is_duplicate
    return ok


@pytest.mark.parametrize("q", [
    SearchQuery(collapse_stories=True, sort="date", limit=30),
    SearchQuery(collapse_stories=True, sort="date", limit=30, offset=600, include_duplicates=False),
    SearchQuery(text="ceasefire", collapse_stories=True, sort="date", limit=50, offset=100),
    SearchQuery(text="nato", collapse_stories=True, sort="date", sources=["b.com"], limit=40, offset=40),
])
def test_collapse_is_exact_beyond_the_first_window(tmp_path, q):
    docs = _stories_corpus(3000, 3)
    be = TantivyBackend(tmp_path / "ix")
    be.reindex(docs)
    be.upsert(docs[:400])  # the incremental path keeps the story index right too
    groups: dict[str, list[SearchDocument]] = {}
    for d in docs:
        if _matches(d, q):
            groups.setdefault(d.story_key, []).append(d)
    ranked = sorted(groups.items(), key=lambda kv: -max(x.published_at.timestamp() for x in kv[1]))
    res = be.search(q)
    assert res.total == len(groups)
    expect = ranked[q.offset:q.offset + q.limit]
    assert [h.story_id or h.id for h in res.hits] == [k[2:] for k, _ in expect]
    assert [h.story_size for h in res.hits] == [len(v) for _, v in expect]
    be.close()


def test_same_totals_and_timelines_as_fts5_on_generated_corpus(tmp_path):
    # The benchmark's deterministic corpus and query mix, loaded by path (benchmarks/ is no package).
    spec = importlib.util.spec_from_file_location("search_bench", ROOT / "benchmarks" / "search_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    corpus_vocabulary, make_docs, make_queries = bench.corpus_vocabulary, bench.make_docs, bench.make_queries

    tv = open_backend(f"tantivy:///{tmp_path}/tv")
    ft = open_backend(f"sqlite:///{tmp_path}/ft.sqlite")
    tv.reindex(make_docs(1500, 60))
    ft.reindex(make_docs(1500, 60))
    queries = make_queries(random.Random(3), corpus_vocabulary(), 120)
    for kind, q in queries:
        a, b = tv.search(q), ft.search(q)
        assert a.total == b.total, q
        if q.sort == "date" or not q.text:
            assert [h.id for h in a.hits] == [h.id for h in b.hits], q
        if kind == "timeline":
            assert tv.timeline(q, "week") == ft.timeline(q, "week"), q
    q = SearchQuery(text="nato OR summit")
    assert tv.facets(q) == ft.facets(q)
    tv.close()
    ft.close()
