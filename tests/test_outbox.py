"""The index outbox under faults: a poison document is isolated and dead-lettered, an outage loses nothing."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from monitor.cli import cli
from monitor.storage.articles import ArticleCandidate, save_article
from monitor.storage.db import Database
from monitor.storage.models import IndexDeadLetter, OutboxEntry
from monitor.storage.outbox import drain_outbox, retry_dead_letters
from monitor.stages.textnorm import content_hash
from search import open_backend
from search.backend import SearchBackendError
from search.fts5 import FTS5Backend
from search.query import SearchQuery


class RejectingFTS5(FTS5Backend):
    """The real embedded backend, except that it refuses documents whose title contains POISON
    (as Meilisearch refuses a document with a bad field); counts its calls."""

    def __init__(self, path, marker="POISON"):
        super().__init__(path)
        self.marker = marker
        self.upsert_calls = 0

    def upsert(self, docs):
        self.upsert_calls += 1
        for d in docs:
            if self.marker in d.title:
                raise SearchBackendError(f"document {d.id}: invalid field `title` (rejected by the index)")
        super().upsert(docs)


def _candidate(i: int, title: str | None = None) -> ArticleCandidate:
    text = f"Article {i} about NATO burden sharing and Ukraine aid, paragraph text number {i}. " * 8
    return ArticleCandidate(
        canonical_url=f"https://news.example/a/{i}", url=f"https://news.example/a/{i}",
        title=title or f"Story number {i}", text=text, text_source="page", content_hash=content_hash(text),
        source="news.example", published_at=datetime(2025, 2, 1, tzinfo=timezone.utc) + timedelta(hours=i),
        topics=["nato"],
    )


def _store(db: Database, n: int, poison: set[int] = frozenset()) -> list[int]:
    ids = []
    with db.session() as s:
        for i in range(n):
            ids.append(save_article(s, _candidate(i, f"POISON {i}" if i in poison else None)).article_id)
    return ids


def _count(db, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_a_poison_document_is_isolated_and_dead_lettered(db, tmp_path):
    ids = _store(db, 40, poison={17})
    backend = RejectingFTS5(tmp_path / "search.sqlite")
    backend.setup()

    first = drain_outbox(db, backend, batch_size=16, max_attempts=3)
    # Every other document is indexed at once; only the poison one waits.
    assert first.error is None and first.sent == 39 and first.rejected == 1 and first.remaining == 1
    assert backend.count() == 39
    assert f"article {ids[17]}" in first.rejections[0] and "invalid field" in first.rejections[0]
    # Bisection: a batch of 16 with one bad document costs about 2*log2(16) calls, not 16.
    assert backend.upsert_calls <= 3 + 2 * 4 + 1
    with db.session() as s:
        (row,) = s.scalars(select(OutboxEntry)).all()
        assert row.article_id == ids[17] and row.attempts == 1 and "invalid field" in row.last_error

    second = drain_outbox(db, backend, batch_size=16, max_attempts=3)
    assert second.rejected == 1 and second.dead_lettered == 0 and second.remaining == 1
    third = drain_outbox(db, backend, batch_size=16, max_attempts=3)
    assert third.dead_lettered == 1 and third.remaining == 0
    with db.session() as s:
        (dead,) = s.scalars(select(IndexDeadLetter)).all()
        assert dead.article_id == ids[17] and dead.attempts == 3 and "invalid field" in dead.error

    # New articles flow past the dead letter.
    with db.session() as s:
        save_article(s, _candidate(100))
    assert drain_outbox(db, backend, max_attempts=3).sent == 1 and backend.count() == 40

    # Once the backend accepts it (fixed mapping, upgraded index), a retry indexes it.
    backend.marker = "NOTHING-IS-REFUSED-NOW"
    assert retry_dead_letters(db) == 1 and _count(db, IndexDeadLetter) == 0
    final = drain_outbox(db, backend, max_attempts=3)
    assert final.sent == 1 and final.remaining == 0 and backend.count() == 41
    assert backend.search(SearchQuery(text="POISON")).total == 1
    backend.close()


def test_two_poison_documents_in_one_batch_do_not_hold_the_rest(db, tmp_path):
    _store(db, 30, poison={0, 29})
    backend = RejectingFTS5(tmp_path / "search.sqlite")
    backend.setup()
    res = drain_outbox(db, backend, batch_size=500, max_attempts=1)
    assert res.sent == 28 and res.rejected == 2 and res.dead_lettered == 2 and res.remaining == 0
    assert backend.count() == 28 and _count(db, IndexDeadLetter) == 2
    backend.close()


def test_backend_down_for_a_while_then_back_loses_nothing(db, tmp_path):
    _store(db, 12)
    down = open_backend(f"http://127.0.0.1:{_closed_port()}")
    for _ in range(4):  # several drains during the outage: nothing is charged or dropped
        res = drain_outbox(db, down, max_attempts=2)
        assert res.error and "unavailable" in res.error and res.sent == 0 and res.remaining == 12
    assert _count(db, IndexDeadLetter) == 0
    with db.session() as s:
        assert all(r.attempts == 0 for r in s.scalars(select(OutboxEntry)))
    _store_more = _candidate(50)
    with db.session() as s:  # ingest goes on during the outage; the outbox grows
        save_article(s, _store_more)
    assert drain_outbox(db, down).remaining == 13

    up = open_backend(f"sqlite:///{tmp_path / 'search.sqlite'}")
    up.setup()
    res = drain_outbox(db, up)
    assert res.error is None and res.sent == 13 and res.remaining == 0 and up.count() == 13
    up.close()


def _invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_status_shows_dead_letters_and_index_retries_them(newsmon_env, tmp_path):
    db = Database(newsmon_env["DATABASE_URL"])
    try:
        ids = _store(db, 5, poison={2})
        # Only the dead letter matters here; the CLI below then retries into the configured backend.
        backend = RejectingFTS5(str(tmp_path / "rejecting.sqlite"))
        backend.setup()
        drain_outbox(db, backend, max_attempts=1)
        backend.close()
    finally:
        db.close()

    status = _invoke("status", "--json")
    assert status.exit_code == 0, status.output
    index = json.loads(status.output)["index"]
    assert index["dead_letters"] == 1 and index["dead"][0]["article_id"] == ids[2]
    assert "invalid field" in index["dead"][0]["error"]
    text = _invoke("status").output
    assert "dead letters: 1" in text and "invalid field" in text and "--retry-dead" in text

    # The real backend takes the document: the retry indexes it and the dead letter is gone.
    retried = _invoke("index", "--retry-dead")
    assert retried.exit_code == 0, retried.output
    assert "retried 1 dead letter(s)" in retried.output and "sent 1" in retried.output
    assert json.loads(_invoke("status", "--json").output)["index"]["dead_letters"] == 0


@pytest.mark.parametrize("command", [["search", "NATO"], ["index"], ["reindex", "--no-progress"], ["status"],
                                     ["status", "--json"]])
@pytest.mark.parametrize("search_url", ["closed-port", "http://exa mple:7700", "http://[::1", "ftp://x/y",
                                        "unwritable"])
def test_backend_problems_give_one_line_and_a_non_zero_exit(newsmon_env, tmp_path, monkeypatch, command, search_url):
    if search_url == "closed-port":
        search_url = f"http://127.0.0.1:{_closed_port()}"
    elif search_url == "unwritable":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        search_url = f"sqlite:///{blocker}/search.sqlite"
    monkeypatch.setenv("SEARCH_URL", search_url)
    result = CliRunner().invoke(cli, command)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    err = result.stderr.strip()
    if command == ["status", "--json"] and result.stdout.strip():
        # A reachable database but no backend: the report is still printed, with the reason.
        assert not err and json.loads(result.stdout)["index"]["backend"] is not True
    else:
        assert len(err.splitlines()) == 1 and err.startswith("Error: ") and (
            "search" in err.lower() or "SEARCH_URL" in err), err
