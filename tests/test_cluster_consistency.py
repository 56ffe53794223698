"""The clustering engine only reflects committed decisions, and equals what the database rebuilds.

- a save that fails after clustering leaves no ghost: later articles are decided as if it never
  happened (on SQLite its id would be reused by the next article);
- a restarted process (engine rebuilt from the database) holds the state of one that never
  stopped, and decides the rest of the stream the same way;
- `recluster` (a real `newsmon recluster` process) while articles are being stored keeps the
  story bookkeeping right, and the running worker picks up the reclustered decisions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from monitor.stages.dates import parse_datetime as parse_time
from monitor.clustering.recluster import recluster_articles
from monitor.clustering.store import Clusterer
from monitor.stages.textnorm import content_hash
from monitor.storage.articles import ArticleCandidate, save_article
from monitor.storage.models import Article, Story

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


def _stream() -> list[ArticleCandidate]:
    """The dedup and stories sets as candidates, in publication order (as the pipeline stores them)."""
    rows = []
    for name in ("dedup", "stories"):
        rows += [json.loads(line) for line in open(DATA / name / "items.jsonl", encoding="utf-8")]
    rows.sort(key=lambda r: (r["published"], r["id"]))
    return [ArticleCandidate(canonical_url=f"https://{r['source']}/{r['id']}", url=f"https://{r['source']}/{r['id']}",
                             title=r["title"], text=r["text"], text_source="page", content_hash=content_hash(r["text"]),
                             source=r["source"], published_at=parse_time(r["published"]))
            for r in rows]


def _save(db, clusterer, cand) -> int:
    with db.session() as s:
        return save_article(s, cand, clusterer).article_id


def _grouping(db) -> dict[str, tuple[str, str | None]]:
    """url -> (url of the story's first article, url of the original it copies)."""
    with db.session() as s:
        url = dict(s.execute(select(Article.id, Article.canonical_url)).all())
        return {a.canonical_url: (url[a.story_id], url.get(a.duplicate_of)) for a in s.scalars(select(Article))}


def _loaded(db) -> Clusterer:
    fresh = Clusterer(db)
    with db.session() as s:
        fresh.begin(s)
    return fresh


def _bookkeeping_is_right(db) -> None:
    with db.session() as s:
        assert s.scalar(select(func.count()).where(Article.story_id.is_(None))) == 0
        for story in s.scalars(select(Story)):
            members = list(s.scalars(select(Article).where(Article.story_id == story.id)))
            assert members, f"story {story.id} has no articles"
            assert story.id in {a.id for a in members}, f"story {story.id} lost the article that started it"
            assert story.article_count == len(members), story.id
            assert story.source_count == len({a.source for a in members}), story.id


def test_a_rolled_back_save_leaves_no_ghost_decision(db, database_url, tmp_path):
    from monitor.storage.db import Database
    from tests.dbfixtures import temporary_database

    stream = _stream()
    gold = {r["id"]: r for r in map(json.loads, open(DATA / "dedup" / "gold.jsonl", encoding="utf-8"))}
    gid = lambda c: c.url.rsplit("/", 1)[1]  # noqa: E731
    # The victim: a copy followed by an article of another story. With a ghost, the next article
    # (which SQLite gives the victim's id) would be stored as a copy of the victim's original.
    victim = next(i for i, c in enumerate(stream[:-1]) if gold.get(gid(c), {}).get("copy_of")
                  and gold.get(gid(stream[i + 1]), {}).get("story") != gold[gid(c)]["story"])
    clean_clusterer = None
    with temporary_database(tmp_path / "clean") as clean_url:
        clean = Database(clean_url)
        clean_clusterer = Clusterer(clean)
        for i, cand in enumerate(stream):
            if i != victim:
                _save(clean, clean_clusterer, cand)
        expected = _grouping(clean)
        clean.close()

    clusterer = Clusterer(db)
    for i, cand in enumerate(stream):
        if i == victim:
            try:
                with db.session() as s:
                    save_article(s, cand, clusterer)
                    s.flush()
                    raise RuntimeError("injected: the transaction fails after clustering")
            except RuntimeError:
                pass
            continue
        _save(db, clusterer, cand)
    assert _grouping(db) == expected
    assert clusterer.rebuilds == 1
    assert clusterer.engine.fingerprint() == _loaded(db).engine.fingerprint()
    _bookkeeping_is_right(db)


def test_restarted_worker_holds_and_decides_what_a_running_one_does(db, tmp_path):
    from monitor.storage.db import Database
    from tests.dbfixtures import temporary_database

    stream = _stream()
    live = Clusterer(db)
    for cand in stream:
        _save(db, live, cand)
    # State rebuilt from the database equals the live state, field by field.
    assert live.engine.fingerprint() == _loaded(db).engine.fingerprint()

    # A worker restarted every 7 articles ends with the same stories and copies.
    with temporary_database(tmp_path / "restarts") as url:
        other = Database(url)
        clusterer = None
        for i, cand in enumerate(stream):
            if i % 7 == 0:
                clusterer = Clusterer(other)
            _save(other, clusterer, cand)
        assert _grouping(other) == _grouping(db)
        other.close()


def test_recluster_with_unchanged_settings_reproduces_the_live_result(db):
    live = Clusterer(db)
    for cand in _stream():
        _save(db, live, cand)
    before = _grouping(db)
    recluster_articles(db)
    assert _grouping(db) == before
    _bookkeeping_is_right(db)


def test_recluster_process_during_ingest_keeps_stories_consistent(db, newsmon_env):
    stream = _stream()
    clusterer = Clusterer(db)
    head, tail = stream[:40], stream[40:]
    for cand in head:
        _save(db, clusterer, cand)
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "recluster"], cwd=ROOT,
                            env={**os.environ, **newsmon_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    saved_during = 0
    for cand in tail:
        _save(db, clusterer, cand)
        saved_during += proc.poll() is None
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    _save(db, clusterer, ArticleCandidate(canonical_url="https://late.example/x", url="https://late.example/x",
                                          title="Late", text=stream[-1].text + "\nLate footer.", text_source="page",
                                          content_hash=content_hash(stream[-1].text + "\nLate footer."),
                                          source="late.example", published_at=stream[-1].published_at))
    # The worker saw the generation change and rebuilt from the reclustered decisions.
    assert clusterer.rebuilds >= 1
    assert clusterer.engine.fingerprint() == _loaded(db).engine.fingerprint()
    _bookkeeping_is_right(db)
    # And what it stored is what a full recluster decides now.
    before = _grouping(db)
    recluster_articles(db)
    assert _grouping(db) == before
