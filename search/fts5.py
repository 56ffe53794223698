"""Embedded search backend: SQLite FTS5 in its own file (WAL; one writer, many reader threads).

Layout: a ``search_meta`` table names the live *generation* N; the tables of generation N are
``docs_N`` (metadata, filters, indexes), ``topics_N`` (topic join table) and ``fts_N`` (FTS5:
title, text, source).  ``reindex`` fills generation N+1 and flips the pointer in one transaction, so
readers see the old or the new index, never a mix; writes made while a reindex runs go to both.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from .backend import (FACET_FIELDS, MARK_CLOSE, MARK_OPEN, BackendUnavailable, Hit, SearchBackendError,
                      SearchResults, TimelineBucket, fill_timeline, plain_snippet, render_snippet,
                      strip_marks, validate_facet_fields)
from .documents import SearchDocument, day_from_epoch, epoch_day, epoch_seconds, last_per_id
from .query import (And, Node, Not, Or, Phrase, QuerySyntaxError, SearchQuery, Term, is_negative_only,
                    time_bounds)

__all__ = ["FTS5Backend", "fts_match_expression"]

TOKENIZER = "porter unicode61 remove_diacritics 2"
BM25_WEIGHTS = (4.0, 1.0, 0.5)  # title, text, source
PREFIX_INDEX = "2 3"  # prefix indexes so `zelensk*` reads a prefix doclist instead of scanning terms
SNIPPET_TOKENS = 24
BATCH = 1000
_CHUNK = 500  # bound parameters per IN (...) list


# ---------------------------------------------------------------- query AST -> FTS5 MATCH


def _quote(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def fts_match_expression(node: Node) -> str:
    """Translate a parsed query into an FTS5 MATCH string. Every word is quoted: user text never
    reaches FTS5 syntax. A NOT must have something positive beside it (``NATO -summit``)."""
    if isinstance(node, Term):
        return _quote(node.word) + ("*" if node.prefix else "")
    if isinstance(node, Phrase):
        return _quote(" ".join(node.words))
    if isinstance(node, Or):
        return "(" + " OR ".join(fts_match_expression(c) for c in node.children) + ")"
    if isinstance(node, And):
        pos = [c for c in node.children if not isinstance(c, Not)]
        neg = [c.child for c in node.children if isinstance(c, Not)]
        if not pos:
            raise QuerySyntaxError("an exclusion inside a group needs a positive word beside it, e.g. (NATO -summit)")
        expr = "(" + " AND ".join(fts_match_expression(c) for c in pos) + ")"
        for n in neg:
            expr += " NOT " + fts_match_expression(n)
        return expr
    if isinstance(node, Not):
        raise QuerySyntaxError("an exclusion inside OR needs a positive word beside it, e.g. (NATO -summit) OR Ukraine")
    raise TypeError(node)  # pragma: no cover


def _negative_expression(node: Node) -> str:
    """For a pure-negative query, the MATCH expression of what must be excluded (OR of the NOTs)."""
    kids = [node] if isinstance(node, Not) else list(node.children)  # type: ignore[union-attr]
    return " OR ".join(fts_match_expression(k.child) for k in kids)  # type: ignore[union-attr]


# ---------------------------------------------------------------- the backend


class FTS5Backend:
    """SearchBackend over SQLite FTS5. ``path`` is the index file (not the application database)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._busy = busy_timeout_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._closed = False
        self.setup()

    # ------------------------------------------------------------ connections & transactions

    def _con(self) -> sqlite3.Connection:
        if self._closed:
            raise SearchBackendError("backend is closed")
        con = getattr(self._local, "con", None)
        if con is None:
            try:
                con = sqlite3.connect(self.path, timeout=self._busy, isolation_level=None,
                                      check_same_thread=False)
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=NORMAL")
                con.execute("PRAGMA cache_size=-16384")
                con.execute("PRAGMA temp_store=MEMORY")
                con.execute("PRAGMA mmap_size=268435456")
            except sqlite3.Error as e:
                raise BackendUnavailable(f"cannot open search index {self.path}: {e}") from e
            self._local.con = con
            with self._conns_lock:
                self._conns.append(con)
        return con

    @contextmanager
    def _read(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        """A read transaction (one snapshot) and the live generation."""
        con = self._con()
        try:
            con.execute("BEGIN")
            try:
                yield con, self._generation(con)
            finally:
                con.execute("COMMIT")
        except sqlite3.OperationalError as e:
            raise SearchBackendError(f"search index error: {e}") from e

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        con = self._con()
        with self._write_lock:
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise BackendUnavailable(f"search index busy: {e}") from e
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            else:
                con.execute("COMMIT")

    @staticmethod
    def _meta(con: sqlite3.Connection, key: str) -> str | None:
        row = con.execute("SELECT value FROM search_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _generation(self, con: sqlite3.Connection) -> int:
        g = self._meta(con, "generation")
        if g is None:
            raise SearchBackendError("search index not set up: call setup()")
        return int(g)

    def _targets(self, con: sqlite3.Connection) -> list[int]:
        gens = [self._generation(con)]
        b = self._meta(con, "building")
        if b is not None:
            gens.append(int(b))
        return gens

    # ------------------------------------------------------------ schema

    @staticmethod
    def _create_generation(con: sqlite3.Connection, g: int) -> None:
        con.execute(f"""CREATE TABLE IF NOT EXISTS docs_{g} (
            rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, url TEXT NOT NULL, title TEXT NOT NULL,
            source TEXT NOT NULL, language TEXT, author TEXT, published_at INTEGER, day INTEGER,
            story_id TEXT, story_key TEXT NOT NULL, is_duplicate INTEGER NOT NULL DEFAULT 0,
            duplicate_of TEXT, topics TEXT NOT NULL DEFAULT '[]')""")
        con.execute(f"CREATE INDEX IF NOT EXISTS docs_{g}_published ON docs_{g}(published_at)")
        con.execute(f"CREATE INDEX IF NOT EXISTS docs_{g}_day ON docs_{g}(day, is_duplicate)")
        con.execute(f"CREATE INDEX IF NOT EXISTS docs_{g}_source ON docs_{g}(source, published_at)")
        con.execute(f"CREATE INDEX IF NOT EXISTS docs_{g}_language ON docs_{g}(language, published_at)")
        # covers story collapse (GROUP BY story_key) and its common filters without table lookups
        con.execute(f"CREATE INDEX IF NOT EXISTS docs_{g}_story ON docs_{g}"
                    f"(story_key, published_at, is_duplicate, language, source)")
        con.execute(f"""CREATE TABLE IF NOT EXISTS topics_{g} (
            topic TEXT NOT NULL, doc INTEGER NOT NULL, PRIMARY KEY (topic, doc)) WITHOUT ROWID""")
        con.execute(f"CREATE INDEX IF NOT EXISTS topics_{g}_doc ON topics_{g}(doc)")
        # ids deleted while this generation was being built, so the reindex does not resurrect them
        con.execute(f"CREATE TABLE IF NOT EXISTS deleted_{g} (id TEXT PRIMARY KEY) WITHOUT ROWID")
        con.execute(f"""CREATE VIRTUAL TABLE IF NOT EXISTS fts_{g} USING fts5(
            title, text, source, tokenize = '{TOKENIZER}', prefix = '{PREFIX_INDEX}')""")
        w = ", ".join(str(x) for x in BM25_WEIGHTS)
        con.execute(f"INSERT INTO fts_{g}(fts_{g}, rank) VALUES ('rank', 'bm25({w})')")

    @staticmethod
    def _drop_generation(con: sqlite3.Connection, g: int) -> None:
        for t in (f"fts_{g}", f"topics_{g}", f"docs_{g}", f"deleted_{g}"):
            con.execute(f"DROP TABLE IF EXISTS {t}")

    def setup(self) -> None:
        """Create the meta table and generation 1 if missing; verify the live generation's tables."""
        with self._write() as con:
            con.execute("CREATE TABLE IF NOT EXISTS search_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            g = self._meta(con, "generation")
            if g is None:
                con.execute("INSERT INTO search_meta VALUES ('generation', '1')")
                con.execute("INSERT OR REPLACE INTO search_meta VALUES ('schema', '1')")
                g = "1"
            gen = int(g)
            have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if f"docs_{gen}" not in have or f"fts_{gen}" not in have or f"topics_{gen}" not in have:
                self._create_generation(con, gen)

    # ------------------------------------------------------------ writes

    @staticmethod
    def _rows(docs: Sequence[SearchDocument], first_rowid: int):
        doc_rows, fts_rows, topic_rows = [], [], []
        for i, d in enumerate(docs):
            rid = first_rowid + i
            pub = epoch_seconds(d.published_at) if d.published_at else None
            day = epoch_day(d.published_at) if d.published_at else None
            doc_rows.append((rid, d.id, d.url, strip_marks(d.title), d.source, d.language, d.author, pub, day,
                             d.story_id, d.story_key, int(d.is_duplicate), d.duplicate_of, json.dumps(d.topics)))
            fts_rows.append((rid, strip_marks(d.title), strip_marks(d.text), d.source))
            topic_rows.extend((t, rid) for t in d.topics)
        return doc_rows, fts_rows, topic_rows

    @staticmethod
    def _existing(con: sqlite3.Connection, g: int, ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(con.execute(f"SELECT id, rowid FROM docs_{g} WHERE id IN ({marks})", chunk).fetchall())
        return found

    @staticmethod
    def _remove_rowids(con: sqlite3.Connection, g: int, rowids: Iterable[int]) -> None:
        rows = [(r,) for r in rowids]
        if rows:
            con.executemany(f"DELETE FROM fts_{g} WHERE rowid = ?", rows)
            con.executemany(f"DELETE FROM topics_{g} WHERE doc = ?", rows)
            con.executemany(f"DELETE FROM docs_{g} WHERE rowid = ?", rows)

    def _insert(self, con: sqlite3.Connection, g: int, docs: Sequence[SearchDocument]) -> None:
        if not docs:
            return
        start = (con.execute(f"SELECT max(rowid) FROM docs_{g}").fetchone()[0] or 0) + 1
        doc_rows, fts_rows, topic_rows = self._rows(docs, start)
        con.executemany(f"INSERT INTO docs_{g} VALUES ({','.join('?' * 14)})", doc_rows)
        con.executemany(f"INSERT INTO fts_{g}(rowid, title, text, source) VALUES (?,?,?,?)", fts_rows)
        if topic_rows:
            con.executemany(f"INSERT INTO topics_{g} VALUES (?,?)", topic_rows)

    def upsert(self, docs: Sequence[SearchDocument]) -> None:
        """Insert or replace documents by id; durable when this returns (committed to the WAL)."""
        if not docs:
            return
        batch = last_per_id(docs)
        ids = [d.id for d in batch]
        try:
            with self._write() as con:
                for g in self._targets(con):
                    self._remove_rowids(con, g, self._existing(con, g, ids).values())
                    self._insert(con, g, batch)
        except sqlite3.OperationalError as e:
            raise BackendUnavailable(f"search index write failed: {e}") from e

    def delete(self, ids: Sequence[str]) -> None:
        ids = [str(i) for i in ids]
        if not ids:
            return
        try:
            with self._write() as con:
                gens = self._targets(con)
                for g in gens:
                    self._remove_rowids(con, g, self._existing(con, g, ids).values())
                for g in gens[1:]:  # a generation being built: remember, so the reindex skips them
                    con.executemany(f"INSERT OR IGNORE INTO deleted_{g} VALUES (?)", [(i,) for i in ids])
        except sqlite3.OperationalError as e:
            raise BackendUnavailable(f"search index write failed: {e}") from e

    def reindex(self, docs: Iterable[SearchDocument], *,
                progress: Callable[[int], None] | None = None) -> int:
        """Build a fresh generation from ``docs`` and swap it in atomically; returns documents indexed.

        Searches keep using the old generation until the swap. Upserts/deletes made meanwhile go to
        both generations; a document already written (or deleted) that way is not overwritten (or
        resurrected) by the older copy the reindex reads.
        """
        with self._write() as con:
            gen = self._generation(con)
            stale = self._meta(con, "building")
            if stale is not None:  # a crashed reindex left its tables behind
                self._drop_generation(con, int(stale))
            new = max(gen, int(stale or 0)) + 1
            self._drop_generation(con, new)
            self._create_generation(con, new)
            con.execute("INSERT OR REPLACE INTO search_meta VALUES ('building', ?)", (str(new),))
        total = 0
        try:
            batch: list[SearchDocument] = []
            for d in docs:
                batch.append(d)
                if len(batch) >= BATCH:
                    total += self._reindex_batch(new, batch)
                    batch = []
                    if progress:
                        progress(total)
            if batch:
                total += self._reindex_batch(new, batch)
                if progress:
                    progress(total)
            with self._write() as con:
                con.execute(f"INSERT INTO fts_{new}(fts_{new}) VALUES ('optimize')")
            with self._write() as con:
                old = self._generation(con)
                con.execute("UPDATE search_meta SET value = ? WHERE key = 'generation'", (str(new),))
                con.execute("DELETE FROM search_meta WHERE key = 'building'")
                self._drop_generation(con, old)
        except BaseException:
            with self._write() as con:
                if self._meta(con, "building") == str(new):
                    con.execute("DELETE FROM search_meta WHERE key = 'building'")
                    self._drop_generation(con, new)
            raise
        return total

    def _reindex_batch(self, g: int, batch: list[SearchDocument]) -> int:
        uniq: dict[str, SearchDocument] = {}
        for d in batch:
            uniq.setdefault(d.id, d)
        with self._write() as con:
            keys = list(uniq)
            present = set(self._existing(con, g, keys))
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i:i + _CHUNK]
                present.update(r[0] for r in con.execute(
                    f"SELECT id FROM deleted_{g} WHERE id IN ({','.join('?' * len(chunk))})", chunk))
            todo = [d for i, d in uniq.items() if i not in present]
            self._insert(con, g, todo)
        return len(todo)

    # ------------------------------------------------------------ reads

    def _plan(self, g: int, q: SearchQuery, *, collapse: bool = False) -> tuple[str, str, list[Any], str | None]:
        """FROM clause, WHERE clause, parameters and the MATCH expression (None for browse).

        With a MATCH and no filters the FTS table is queried alone (no per-row join)."""
        node = q.parsed()
        if (node is not None and not is_negative_only(node) and not collapse and not q.sources
                and not q.languages and not q.topics and q.since is None and q.until is None
                and q.include_duplicates):
            match = fts_match_expression(node)
            return f"fts_{g} JOIN docs_{g} d ON d.rowid = fts_{g}.rowid", f" WHERE fts_{g} MATCH ?", [match], match
        where: list[str] = []
        params: list[Any] = []
        match: str | None = None
        if node is not None and not is_negative_only(node):
            match = fts_match_expression(node)
            # CROSS JOIN pins the FTS index as the outer loop (SQLite never reorders it): an index on a
            # broad filter (language = en) driving per-row MATCH lookups is 100x slower.
            frm = f"fts_{g} CROSS JOIN docs_{g} d ON d.rowid = fts_{g}.rowid"
            where.append(f"fts_{g} MATCH ?")
            params.append(match)
        else:
            frm = f"docs_{g} d INDEXED BY docs_{g}_story" if collapse else f"docs_{g} d"
            if node is not None:
                where.append(f"d.rowid NOT IN (SELECT rowid FROM fts_{g} WHERE fts_{g} MATCH ?)")
                params.append(_negative_expression(node))
        for col, values in (("source", q.sources), ("language", q.languages)):
            if values:
                where.append(f"d.{col} IN ({','.join('?' * len(values))})")
                params.extend(values)
        if q.topics:
            where.append(f"d.rowid IN (SELECT doc FROM topics_{g} WHERE topic IN ({','.join('?' * len(q.topics))}))")
            params.extend(q.topics)
        lo, hi = time_bounds(q)
        if lo is not None:
            where.append("d.published_at >= ?")
            params.append(lo)
        if hi is not None:
            where.append("d.published_at < ?")
            params.append(hi)
        if not q.include_duplicates:
            where.append("d.is_duplicate = 0")
        return frm, (" WHERE " + " AND ".join(where)) if where else "", params, match

    def search(self, q: SearchQuery) -> SearchResults:
        with self._read() as (con, g):
            frm, where, params, match = self._plan(g, q, collapse=q.collapse_stories)
            by_date = q.sort == "date" or match is None
            score = f"fts_{g}.rank" if match else "NULL"  # rank = bm25 with BM25_WEIGHTS (set at creation)
            page = [q.limit, q.offset]
            try:
                if q.collapse_stories:
                    total = con.execute(f"SELECT count(DISTINCT d.story_key) FROM {frm}{where}", params).fetchone()[0]
                    if by_date:
                        sql = (f"SELECT d.rowid, max(coalesce(d.published_at, -9e18)) AS k, count(*) "
                               f"FROM {frm}{where} GROUP BY d.story_key ORDER BY k DESC, d.rowid DESC LIMIT ? OFFSET ?")
                    else:
                        sql = (f"SELECT d.rowid, min({score}) AS k, count(*) FROM {frm}{where} "
                               f"GROUP BY d.story_key ORDER BY k, d.rowid DESC LIMIT ? OFFSET ?")
                    rows = [(r[0], r[2], None if by_date else r[1]) for r in con.execute(sql, params + page)]
                else:
                    order = ("d.published_at DESC NULLS LAST, d.rowid DESC" if by_date
                             else "s, d.published_at DESC NULLS LAST")
                    if frm.startswith(f"fts_{g} JOIN"):  # text only, no filters: FTS5 alone
                        total = con.execute(f"SELECT count(*) FROM fts_{g}{where}", params).fetchone()[0]
                        sql = (f"SELECT rowid, rank FROM fts_{g}{where} ORDER BY rank LIMIT ? OFFSET ?" if not by_date
                               else f"SELECT d.rowid, NULL FROM {frm}{where} ORDER BY {order} LIMIT ? OFFSET ?")
                        rows = [(r[0], None, r[1]) for r in con.execute(sql, params + page)]
                    elif match:  # text + filters: one pass; count(*) OVER () beats a second join pass
                        sql = (f"SELECT d.rowid, {score} AS s, count(*) OVER () FROM {frm}{where} "
                               f"ORDER BY {order} LIMIT ? OFFSET ?")
                        raw = con.execute(sql, params + page).fetchall()
                        total = raw[0][2] if raw else con.execute(
                            f"SELECT count(*) FROM {frm}{where}", params).fetchone()[0]
                        rows = [(r[0], None, r[1]) for r in raw]
                    else:  # browse: indexes give the count and the newest rows
                        total = con.execute(f"SELECT count(*) FROM {frm}{where}", params).fetchone()[0]
                        sql = f"SELECT d.rowid, NULL FROM {frm}{where} ORDER BY {order} LIMIT ? OFFSET ?"
                        rows = [(r[0], None, r[1]) for r in con.execute(sql, params + page)]
                hits = self._hits(con, g, rows, match, collapse=q.collapse_stories)
            except sqlite3.OperationalError as e:
                raise SearchBackendError(f"search failed: {e}") from e
        return SearchResults(total=total, hits=hits, offset=q.offset, limit=q.limit)

    def _hits(self, con: sqlite3.Connection, g: int, rows: list[tuple[int, int | None, float | None]],
              match: str | None, *, collapse: bool) -> list[Hit]:
        if not rows:
            return []
        rowids = [r[0] for r in rows]
        marks = ",".join("?" * len(rowids))
        meta = {r[0]: r for r in con.execute(
            f"SELECT rowid, id, url, title, source, language, published_at, story_id, is_duplicate, topics "
            f"FROM docs_{g} WHERE rowid IN ({marks})", rowids)}
        if match:
            snip = {r[0]: (r[1], r[2]) for r in con.execute(
                f"SELECT rowid, snippet(fts_{g}, 1, '{MARK_OPEN}', '{MARK_CLOSE}', '…', {SNIPPET_TOKENS}), "
                f"highlight(fts_{g}, 0, '{MARK_OPEN}', '{MARK_CLOSE}') "
                f"FROM fts_{g} WHERE fts_{g} MATCH ? AND +rowid IN ({marks})", [match, *rowids])}
            # "+rowid": keep the IN list away from FTS5, which would re-run the MATCH per rowid
        else:
            texts = {r[0]: r[1] for r in con.execute(
                f"SELECT rowid, substr(text, 1, 600) FROM fts_{g} WHERE rowid IN ({marks})", rowids)}
        hits = []
        for rid, n, score in rows:
            m = meta[rid]
            if match:
                s, t = snip.get(rid, ("", None))
                snippet = render_snippet(s) if s else ""
                title_html = render_snippet(t) if t else None
            else:
                snippet, title_html = plain_snippet(texts.get(rid, ""), SNIPPET_TOKENS), None
            hits.append(Hit(
                id=m[1], url=m[2], title=m[3], source=m[4], language=m[5],
                published_at=datetime.fromtimestamp(m[6], timezone.utc) if m[6] is not None else None,
                story_id=m[7], is_duplicate=bool(m[8]), topics=json.loads(m[9]),
                snippet=snippet, title_html=title_html,
                story_size=n if collapse else None,
                score=(-score if score is not None else None),
            ))
        return hits

    def timeline(self, q: SearchQuery, interval: Literal["day", "week"] = "day") -> list[TimelineBucket]:
        """Matching articles per UTC day (or ISO week, keyed by its Monday), oldest first, gaps as 0."""
        if interval not in ("day", "week"):
            raise ValueError("interval must be 'day' or 'week'")
        key = "d.day" if interval == "day" else "(d.day - (((d.day + 3) % 7) + 7) % 7)"
        with self._read() as (con, g):
            frm, where, params, _ = self._plan(g, q)
            where = (where + " AND " if where else " WHERE ") + "d.day IS NOT NULL"
            rows = con.execute(f"SELECT {key} AS k, count(*) FROM {frm}{where} GROUP BY k ORDER BY k", params).fetchall()
        return fill_timeline({day_from_epoch(k): c for k, c in rows}, q, interval)

    def facets(self, q: SearchQuery, fields: Sequence[str] = FACET_FIELDS,
               limit: int = 10) -> dict[str, list[tuple[str, int]]]:
        """Top values with counts of matching articles for each field (most frequent first)."""
        validate_facet_fields(fields)
        out: dict[str, list[tuple[str, int]]] = {}
        with self._read() as (con, g):
            frm, where, params, _ = self._plan(g, q)
            for f in fields:
                if f == "topics":
                    sql = (f"SELECT t.topic, count(*) AS n FROM topics_{g} t "
                           f"WHERE t.doc IN (SELECT d.rowid FROM {frm}{where}) "
                           f"GROUP BY t.topic ORDER BY n DESC, t.topic LIMIT ?")
                    if not where:
                        sql = f"SELECT topic, count(*) AS n FROM topics_{g} GROUP BY topic ORDER BY n DESC, topic LIMIT ?"
                else:
                    w = (where + " AND " if where else " WHERE ") + f"d.{f} IS NOT NULL"
                    sql = f"SELECT d.{f}, count(*) AS n FROM {frm}{w} GROUP BY d.{f} ORDER BY n DESC, d.{f} LIMIT ?"
                out[f] = [(r[0], r[1]) for r in con.execute(sql, [*params, limit])]
        return out

    def count(self) -> int:
        with self._read() as (con, g):
            return con.execute(f"SELECT count(*) FROM docs_{g}").fetchone()[0]

    def health(self) -> bool:
        try:
            with self._read() as (con, g):
                con.execute(f"SELECT 1 FROM docs_{g} LIMIT 1").fetchall()
            return True
        except (SearchBackendError, sqlite3.Error):
            return False

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            for c in self._conns:
                try:
                    c.close()
                except sqlite3.Error:  # pragma: no cover
                    pass
            self._conns.clear()

    def __repr__(self) -> str:
        return f"FTS5Backend({self.path!r})"

