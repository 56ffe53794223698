"""A crash or kill at any point of an ingest pass loses nothing and duplicates nothing.

Each case runs a real `newsmon ingest` in a child process that dies abruptly (os._exit, as a
SIGKILL would leave things) at a chosen point — before an article's transaction, inside it
after the rows were flushed, or after all articles but before the feeds' state is saved — or
is SIGKILLed from outside. A second, normal pass must then leave exactly the rows a clean run
leaves, every article in a story, and the search index in step with the database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.storage.db import Database
from monitor.storage.models import Article, ArticleUrl, OutboxEntry
from search import open_backend

EXPECTED = json.loads((Path(__file__).parent / "data" / "site" / "expected.json").read_text())
# Rows a clean run leaves: one per distinct canonical page, minus the exact copy folded by hash
# (checked against the real pipeline by tests/test_ingest_e2e.py).
CLEAN_ROWS = len({i.get("canonical") or i["id"] for i in EXPECTED["items"]}) - 1

CHILD = textwrap.dedent(
    """
    import os, sys
    import monitor.run.pipeline as pipeline
    where, after = os.environ["CRASH_WHERE"], int(os.environ["CRASH_AFTER"])
    calls = 0
    real_save = pipeline.save_articles

    def save_then_maybe_die(session, cands, clusterer=None):
        # Articles are stored in batches: die before (or inside) the transaction of the
        # batch that holds article number after + 1.
        global calls
        if where == "before-transaction" and calls + len(cands) > after:
            os._exit(137)
        outcomes = real_save(session, cands, clusterer)
        calls += len(cands)
        if where == "inside-transaction" and calls > after:
            session.flush()
            os._exit(137)
        return outcomes

    pipeline.save_articles = save_then_maybe_die
    if where == "before-feed-state":
        pipeline.Pipeline._finish_feed = lambda self, run, summary: os._exit(137)
    from monitor.cli import main
    sys.argv = ["newsmon", "ingest", "--once", "--no-progress", "--feeds", sys.argv[1]]
    main()
    """
)


def _feeds(tmp_path: Path, base: str) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + "".join(f"  - url: {base}/{n}\n" for n in ("natowatch.rss", "ukraineaid.atom", "foreignpolicy.xml")))
    return path


def _run(args: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=300, **kw)


def _check_consistent(newsmon_env) -> None:
    db = Database(newsmon_env["DATABASE_URL"])
    try:
        with db.session() as s:
            assert s.scalar(select(func.count(Article.id))) == CLEAN_ROWS
            assert s.scalar(select(func.count(func.distinct(Article.canonical_url)))) == CLEAN_ROWS
            assert s.scalar(select(func.count(Article.id)).where(Article.story_id.is_(None))) == 0
            assert s.scalar(select(func.count(OutboxEntry.id))) == 0
            orphans = select(func.count()).select_from(ArticleUrl).where(~ArticleUrl.article_id.in_(select(Article.id)))
            assert s.scalar(orphans) == 0
    finally:
        db.close()
    backend = open_backend(newsmon_env["SEARCH_URL"])
    try:
        assert backend.count() == CLEAN_ROWS
    finally:
        backend.close()


@pytest.mark.parametrize(
    "where, after",
    [("before-transaction", 0), ("before-transaction", 7), ("inside-transaction", 0), ("inside-transaction", 11),
     ("before-feed-state", 0)],
)
def test_crash_then_rerun_gives_the_clean_result(where, after, site_server, newsmon_env, tmp_path):
    feeds = _feeds(tmp_path, site_server.base)
    crashed = _run(["-c", CHILD, str(feeds)], {"CRASH_WHERE": where, "CRASH_AFTER": str(after)})
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    rerun = _run(["-m", "monitor.cli", "ingest", "--once", "--no-progress", "--feeds", str(feeds)])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    _check_consistent(newsmon_env)


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_sigkill_from_outside_then_rerun(delay, site_server, newsmon_env, tmp_path):
    feeds = _feeds(tmp_path, site_server.base)
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "ingest", "--once", "--no-progress", "--feeds", str(feeds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    rerun = _run(["-m", "monitor.cli", "ingest", "--once", "--no-progress", "--feeds", str(feeds)])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    _check_consistent(newsmon_env)


def test_two_workers_at_once_store_each_article_once(site_server, newsmon_env, tmp_path):
    feeds = _feeds(tmp_path, site_server.base)
    cmd = [sys.executable, "-m", "monitor.cli", "ingest", "--once", "--no-progress", "--feeds", str(feeds)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    _check_consistent(newsmon_env)
