"""Embedded search backend on Tantivy: a directory of index generations behind a pointer file.

Layout of ``path``::

    CURRENT              name of the live generation ("gen-000003"), replaced atomically
    write.lock           flock held for each write batch and for a reindex's final swap
    BUILDING             "<pid> <generation>" while a reindex builds the next generation
    gen-000004.journal   writes made meanwhile, replayed into the new generation before the swap
    gen-000003/articles  one Tantivy document per article
    gen-000003/stories   one document per story (newest article, sizes): the front page

Tantivy allows one ``IndexWriter`` per index across all processes. The process that writes first
(in practice the one draining the outbox) keeps the writer and commits every batch; a writer in
another process waits ``lock_wait_s`` and then raises :class:`BackendUnavailable` naming the
reason, so the outbox keeps the work. Readers in any process notice commits and swaps by
checking the pointer file and ``meta.json`` before each read.
"""
from __future__ import annotations

import fcntl
import html
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import tantivy
from tantivy import FieldType, Occur, Order, Query, SnippetGenerator

from .backend import (FACET_FIELDS, MARK_CLOSE, MARK_OPEN, BackendUnavailable, Hit, SearchBackendError,
                      SearchResults, TimelineBucket, fill_timeline, plain_snippet, render_snippet,
                      strip_marks, validate_facet_fields)
from .documents import SearchDocument, day_from_epoch, epoch_day, epoch_seconds, last_per_id
from .query import Node, SearchQuery, is_negative_only, time_bounds
from .tantivy_query import (NO_DATE, TOKENIZER, Translator, analyzers, article_schema, story_hash,
                            story_schema)

__all__ = ["TantivyBackend"]

SNIPPET_TOKENS = 24       # browse snippets, as FTS5
SNIPPET_CHARS = 160       # about FTS5's 24-token window
WRITER_HEAP = 50_000_000
BUILD_HEAP = 200_000_000
STORY_HEAP = 15_000_000   # the binding's minimum per thread
BATCH = 1000
_MAX_I64 = 2 ** 63 - 1
_MIN_I64 = -(2 ** 63)
_FACET_FIELD = {"source": "source_key", "topics": "topics", "language": "language"}
_BUCKET_LIMIT_HINT = "bucket"  # Tantivy's aggregation error names its bucket limit


@dataclass
class _Generation:
    name: str
    articles: tantivy.Index
    stories: tantivy.Index
    stamps: dict[str, int] = field(default_factory=dict)
    writer: tantivy.IndexWriter | None = None
    story_writer: tantivy.IndexWriter | None = None


@dataclass
class _StoryStats:
    size: int = 0
    size_nodup: int = 0
    newest: tuple[int, str] = (NO_DATE - 1, "")
    newest_nodup: tuple[int, str] = (NO_DATE - 1, "")

    def add(self, published: int, doc_id: str, dup: bool) -> None:
        self.size += 1
        if (published, doc_id) > self.newest:
            self.newest = (published, doc_id)
        if not dup:
            self.size_nodup += 1
            if (published, doc_id) > self.newest_nodup:
                self.newest_nodup = (published, doc_id)


class TantivyBackend:
    """SearchBackend over Tantivy (``tantivy`` on PyPI). ``path`` is the index directory."""

    def __init__(self, path: str | Path, *, lock_wait_s: float = 5.0) -> None:
        self.path = Path(path)
        self.lock_wait_s = lock_wait_s
        self._schema = article_schema()
        self._story_schema = story_schema()
        stem, fold = analyzers()
        self._stem = stem
        self._tr = Translator(self._schema, stem, fold)
        self._lock = threading.RLock()
        self._flock_fd: int | None = None
        self._flock_depth = 0
        self._gen: _Generation | None = None
        self._pointer_stamp: tuple[int, int] | None = None
        self._closed = False
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BackendUnavailable(f"cannot create search index directory {self.path}: {e}") from e
        self.setup()

    # ------------------------------------------------------------ files, locks, generations

    def _file(self, name: str) -> Path:
        return self.path / name

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This thread holds the process lock and the cross-process write.lock."""
        with self._lock:
            if self._flock_depth == 0:
                fd = os.open(self._file("write.lock"), os.O_RDWR | os.O_CREAT, 0o644)
                deadline = time.monotonic() + self.lock_wait_s
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            os.close(fd)
                            raise BackendUnavailable(
                                f"search index {self.path} is busy (another process holds write.lock); retry later")
                        time.sleep(0.05)
                self._flock_fd = fd
            self._flock_depth += 1
            try:
                yield
            finally:
                self._flock_depth -= 1
                if self._flock_depth == 0 and self._flock_fd is not None:
                    fcntl.flock(self._flock_fd, fcntl.LOCK_UN)
                    os.close(self._flock_fd)
                    self._flock_fd = None

    def _open_index(self, path: Path, schema: tantivy.Schema) -> tantivy.Index:
        path.mkdir(parents=True, exist_ok=True)
        try:
            idx = tantivy.Index.open(str(path)) if tantivy.Index.exists(str(path)) else tantivy.Index(schema, str(path))
        except ValueError as e:
            raise SearchBackendError(f"cannot open search index {path}: {e}") from e
        # The binding does not persist custom tokenizers: register on every open, or indexing and
        # query parsing fall back to errors ("tokenizer not found").
        idx.register_tokenizer(TOKENIZER, self._stem)
        return idx

    def _open_generation(self, name: str) -> _Generation:
        base = self.path / name
        return _Generation(name, self._open_index(base / "articles", self._schema),
                           self._open_index(base / "stories", self._story_schema))

    def _write_pointer(self, name: str) -> None:
        tmp = self._file(f"CURRENT.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._file("CURRENT"))  # atomic: readers see the old name or the new one
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _read_pointer(self) -> tuple[str, tuple[int, int]] | None:
        try:
            st = os.stat(self._file("CURRENT"))
            name = self._file("CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        return name, (st.st_ino, st.st_mtime_ns)

    def setup(self) -> None:
        """Create generation 1 if there is none; open the live generation."""
        if self._read_pointer() is None:
            with self._locked():
                if self._read_pointer() is None:
                    self._open_generation("gen-000001")
                    self._write_pointer("gen-000001")
        self._live()

    def _live(self) -> _Generation:
        """The live generation, reopened after a swap and reloaded after another process's commit."""
        if self._closed:
            raise SearchBackendError("backend is closed")
        ptr = self._read_pointer()
        if ptr is None:
            raise SearchBackendError(f"search index {self.path} not set up: call setup()")
        name, stamp = ptr
        with self._lock:
            if self._gen is None or stamp != self._pointer_stamp:
                if self._gen is None or self._gen.name != name:
                    old, self._gen = self._gen, self._open_generation(name)
                    if old is not None:
                        self._drop_writers(old)
                self._pointer_stamp = stamp
            gen = self._gen
            for part, idx in (("articles", gen.articles), ("stories", gen.stories)):
                try:
                    m = os.stat(self.path / gen.name / part / "meta.json").st_mtime_ns
                except FileNotFoundError:
                    continue
                if gen.stamps.get(part) != m:
                    idx.reload()
                    gen.stamps[part] = m
            return gen

    @staticmethod
    def _drop_writers(gen: _Generation) -> None:
        gen.writer = gen.story_writer = None  # the binding releases the lock when the writer is freed

    def _writer(self, idx: tantivy.Index, heap: int, threads: int = 1) -> tantivy.IndexWriter:
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                return idx.writer(heap, threads)
            except ValueError as e:
                if "LockBusy" not in str(e):
                    raise SearchBackendError(f"cannot open search index writer: {e}") from e
                if time.monotonic() >= deadline:
                    raise BackendUnavailable(
                        f"search index {self.path} has a writer in another process (e.g. `newsmon run`, "
                        "which indexes the outbox itself); retry when it stops") from None
                time.sleep(0.1)

    def _writers(self, gen: _Generation) -> tuple[tantivy.IndexWriter, tantivy.IndexWriter]:
        if gen.writer is None:
            gen.writer = self._writer(gen.articles, WRITER_HEAP)
        if gen.story_writer is None:
            gen.story_writer = self._writer(gen.stories, STORY_HEAP)
        return gen.writer, gen.story_writer

    def _building(self) -> str | None:
        """The generation a live reindex builds; a marker left by a dead process is cleared."""
        try:
            pid_s, name = self._file("BUILDING").read_text().split()
        except (FileNotFoundError, ValueError):
            return None
        pid = int(pid_s)
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                self._abandon_build(name)
                return None
            except PermissionError:
                pass
        return name

    def _abandon_build(self, name: str) -> None:
        for p in (self._file("BUILDING"), self._file(f"{name}.journal")):
            p.unlink(missing_ok=True)
        shutil.rmtree(self.path / name, ignore_errors=True)

    # ------------------------------------------------------------ writes

    def _doc(self, d: SearchDocument) -> tantivy.Document:
        pub = epoch_seconds(d.published_at) if d.published_at else NO_DATE
        doc = tantivy.Document()
        doc.add_text("id", d.id)
        doc.add_text("title", strip_marks(d.title))
        doc.add_text("text", strip_marks(d.text))
        doc.add_text("source", d.source)
        doc.add_text("source_key", d.source)
        doc.add_text("url", d.url)
        if d.language:
            doc.add_text("language", d.language)
        if d.author:
            doc.add_text("author", d.author)
        for t in d.topics:
            doc.add_text("topics", t)
        if d.story_id is not None:
            doc.add_text("story_id", d.story_id)
        doc.add_text("story_key", d.story_key)
        if d.duplicate_of is not None:
            doc.add_text("duplicate_of", d.duplicate_of)
        doc.add_integer("story_hash", story_hash(d.story_key))
        doc.add_integer("is_dup", int(d.is_duplicate))
        doc.add_integer("published", pub)
        if d.published_at:
            doc.add_integer("day", epoch_day(d.published_at))
        return doc

    def _stored_keys(self, gen: _Generation, ids: Sequence[str]) -> set[str]:
        """Story keys the given articles have in the index now."""
        keys: set[str] = set()
        if not ids:
            return keys
        s = gen.articles.searcher()
        for i in range(0, len(ids), 1000):
            chunk = list(ids[i:i + 1000])
            res = s.search(Query.term_set_query(self._schema, "id", chunk), len(chunk), count=False)
            keys.update(s.doc(a).get_first("story_key") for _, a in res.hits)
        return keys

    def _apply(self, gen: _Generation, upserts: Sequence[SearchDocument], deletes: Sequence[str]) -> None:
        """Replace/delete articles in one commit, then bring the stories they touch up to date."""
        writer, story_writer = self._writers(gen)
        touched = self._stored_keys(gen, [d.id for d in upserts] + list(deletes))
        touched.update(d.story_key for d in upserts)
        try:
            for i in deletes:
                writer.delete_documents_by_term("id", i)  # a str term on the raw id field
            for d in upserts:
                writer.delete_documents_by_term("id", d.id)
                writer.add_document(self._doc(d))
            writer.commit()
        except ValueError as e:
            writer.rollback()
            raise SearchBackendError(f"search index write failed: {e}") from e
        gen.articles.reload()
        self._update_stories(gen, story_writer, touched)

    def _story_members(self, searcher: tantivy.Searcher, key: str) -> _StoryStats:
        st = _StoryStats()
        q = Query.term_query(self._schema, "story_hash", story_hash(key))
        n = searcher.search(q, 1, count=True).count
        if n == 0:
            return st
        hits = searcher.search(q, n, count=False).hits
        addrs = [a for _, a in hits]
        pubs = searcher.fast_field_values("published", addrs)
        dups = searcher.fast_field_values("is_dup", addrs)
        for a, p, dup in zip(addrs, pubs, dups):
            st.add(int(p), searcher.doc(a).get_first("id"), bool(dup))
        return st

    def _story_doc(self, key: str, st: _StoryStats) -> tantivy.Document:
        doc = tantivy.Document()
        doc.add_text("story_key", key)
        doc.add_text("head", st.newest[1])
        doc.add_text("head_nodup", st.newest_nodup[1])
        doc.add_integer("size", st.size)
        doc.add_integer("size_nodup", st.size_nodup)
        doc.add_integer("newest", st.newest[0])
        doc.add_integer("newest_nodup", st.newest_nodup[0] if st.size_nodup else NO_DATE - 1)
        doc.add_integer("has_nodup", int(st.size_nodup > 0))
        return doc

    def _update_stories(self, gen: _Generation, story_writer: tantivy.IndexWriter, keys: Iterable[str]) -> None:
        searcher = gen.articles.searcher()
        for key in keys:
            st = self._story_members(searcher, key)
            story_writer.delete_documents_by_term("story_key", key)
            if st.size:
                story_writer.add_document(self._story_doc(key, st))
        story_writer.commit()
        gen.stories.reload()

    def _journal(self, building: str, op: str, payload: list) -> None:
        with open(self._file(f"{building}.journal"), "a", encoding="utf-8") as f:
            f.write(json.dumps({"op": op, "docs": payload}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def upsert(self, docs: Sequence[SearchDocument]) -> None:
        """Insert or replace documents by id; durable (committed) when this returns."""
        if not docs:
            return
        batch = last_per_id(docs)
        with self._locked():
            gen = self._live()
            self._apply(gen, batch, [])
            building = self._building()
            if building is not None and building != gen.name:
                self._journal(building, "upsert", [_doc_json(d) for d in batch])

    def delete(self, ids: Sequence[str]) -> None:
        ids = [str(i) for i in ids]
        if not ids:
            return
        with self._locked():
            gen = self._live()
            self._apply(gen, [], ids)
            building = self._building()
            if building is not None and building != gen.name:
                self._journal(building, "delete", ids)

    def reindex(self, docs: Iterable[SearchDocument], *,
                progress: Callable[[int], None] | None = None) -> int:
        """Build a new generation from ``docs`` and switch CURRENT to it atomically.

        Searches keep using the old generation until the switch. Writes made meanwhile (by any
        process) go to the old generation and to a journal that is replayed into the new one
        under the write lock just before the switch, so none is lost or overwritten by an older
        copy the reindex read.
        """
        with self._locked():
            live = self._live().name
            stale = self._building()
            if stale is not None:
                raise BackendUnavailable(f"another reindex of {self.path} is running ({stale}); retry when it ends")
            for p in self.path.glob("gen-*"):
                if p.is_dir() and p.name != live:
                    shutil.rmtree(p, ignore_errors=True)
                elif p.suffix == ".journal":
                    p.unlink(missing_ok=True)
            new = f"gen-{int(live.split('-')[1]) + 1:06d}"
            self._file("BUILDING").write_text(f"{os.getpid()} {new}\n")
        try:
            total = self._build(new, docs, progress)
            with self._locked():
                gen = self._open_generation(new)
                journal = self._file(f"{new}.journal")
                if journal.exists():
                    for line in journal.read_text(encoding="utf-8").splitlines():
                        entry = json.loads(line)
                        if entry["op"] == "upsert":
                            self._apply(gen, [_doc_from_json(x) for x in entry["docs"]], [])
                        else:
                            self._apply(gen, [], entry["docs"])
                self._drop_writers(gen)
                old = self._gen
                self._write_pointer(new)
                self._file("BUILDING").unlink(missing_ok=True)
                journal.unlink(missing_ok=True)
                if old is not None:
                    self._drop_writers(old)
                self._gen = None
                self._live()
        except BaseException:
            with self._locked():
                if self._building() == new:
                    self._abandon_build(new)
            raise
        return total

    def _build(self, name: str, docs: Iterable[SearchDocument],
               progress: Callable[[int], None] | None) -> int:
        gen = self._open_generation(name)
        writer = self._writer(gen.articles, BUILD_HEAP, 2)
        stories: dict[str, _StoryStats] = {}
        seen: set[str] = set()
        total = 0
        try:
            for d in docs:
                if d.id in seen:
                    continue  # first copy wins, as in FTS5
                seen.add(d.id)
                writer.add_document(self._doc(d))
                pub = epoch_seconds(d.published_at) if d.published_at else NO_DATE
                stories.setdefault(d.story_key, _StoryStats()).add(pub, d.id, d.is_duplicate)
                total += 1
                if progress and total % BATCH == 0:
                    progress(total)
            writer.commit()
            writer.wait_merging_threads()
        except ValueError as e:
            raise SearchBackendError(f"search index build failed: {e}") from e
        del writer
        story_writer = self._writer(gen.stories, BUILD_HEAP // 2, 1)
        for key, st in stories.items():
            story_writer.add_document(self._story_doc(key, st))
        story_writer.commit()
        story_writer.wait_merging_threads()
        del story_writer
        if progress and total % BATCH:
            progress(total)
        return total

    # ------------------------------------------------------------ reads

    def _filters(self, q: SearchQuery) -> list[Query]:
        out: list[Query] = []
        for f, values in (("source_key", q.sources), ("language", q.languages), ("topics", q.topics)):
            if values:
                out.append(Query.term_set_query(self._schema, f, list(values)))
        lo, hi = time_bounds(q)
        if lo is not None or hi is not None:
            out.append(Query.range_query(self._schema, "published", FieldType.Integer,
                                         lo if lo is not None else NO_DATE + 1,
                                         hi - 1 if hi is not None else _MAX_I64))
        if not q.include_duplicates:
            out.append(Query.term_query(self._schema, "is_dup", 0))
        return out

    def _query(self, node: Node | None, q: SearchQuery) -> tuple[Query, bool]:
        """The whole query and whether it ranks by text (False: browse, sorted by date)."""
        filters = [(Occur.Must, Query.const_score_query(f, 0.0)) for f in self._filters(q)]
        if node is None:
            text, ranked = Query.all_query(), False
        elif is_negative_only(node):
            text, ranked = self._tr.negative(node), False
        else:
            text, ranked = self._tr.to_query(node), True
        if not filters:
            return text, ranked
        return Query.boolean_query([(Occur.Must, text), *filters]), ranked

    def search(self, q: SearchQuery) -> SearchResults:
        node = q.parsed()
        gen = self._live()
        searcher = gen.articles.searcher()
        tq, ranked = self._query(node, q)
        by_date = q.sort == "date" or not ranked
        order = {"order_by_field": "published", "order": Order.Desc} if by_date else {}
        try:
            if q.collapse_stories:
                plain_browse = (node is None and not q.sources and not q.languages and not q.topics
                                and q.since is None and q.until is None)
                page = self._front_page(gen, searcher, q) if plain_browse else None
                if page is None:
                    page = self._collapse(searcher, tq, q, order)
                total, rows = page
            elif q.limit == 0:
                total, rows = searcher.search(tq, 1, count=True).count, []
            else:
                res = searcher.search(tq, q.limit, count=True, offset=q.offset, **order)
                total = res.count
                rows = [(a, None, None if by_date else s) for s, a in res.hits]
            hits = self._hits(searcher, rows, node if ranked else None)
        except ValueError as e:
            raise SearchBackendError(f"search failed: {e}") from e
        return SearchResults(total=total, hits=hits, offset=q.offset, limit=q.limit)

    def _front_page(self, gen: _Generation, searcher: tantivy.Searcher, q: SearchQuery):
        """Newest stories without filters, read from the story index (exact: one row per story)."""
        stories = gen.stories.searcher()
        nodup = not q.include_duplicates
        sq = Query.term_query(self._story_schema, "has_nodup", 1) if nodup else Query.all_query()
        res = stories.search(sq, max(q.limit, 1), count=True, offset=q.offset,
                             order_by_field="newest_nodup" if nodup else "newest", order=Order.Desc)
        if q.limit == 0:
            return res.count, []
        heads: list[tuple[str, int]] = []
        for _, a in res.hits:
            d = stories.doc(a)
            heads.append((d.get_first("head_nodup" if nodup else "head"),
                          d.get_first("size_nodup" if nodup else "size")))
        if not heads:
            return res.count, []
        found = searcher.search(Query.term_set_query(self._schema, "id", [h for h, _ in heads]), len(heads),
                                count=False)
        addr = {searcher.doc(a).get_first("id"): a for _, a in found.hits}
        if len(addr) != len(heads):
            return None  # story index behind the articles (a crash between commits): group instead
        return res.count, [(addr[h], n, None) for h, n in heads]

    def _collapse(self, searcher: tantivy.Searcher, tq: Query, q: SearchQuery, order: dict):
        """Story collapse: exact totals from the multi-article stories, the page from a widening top-k.

        Groups are ordered by their best article (score or date), so the first m distinct stories
        among the top-k articles are exactly the top m stories."""
        n_docs = searcher.search(tq, 1, count=True).count
        multi = self._multi_story_counts(searcher, tq, _MIN_I64, _MAX_I64)
        total = n_docs - sum(c - 1 for c in multi.values())
        need = q.offset + q.limit
        if need == 0 or n_docs == 0:
            return total, []
        k = max(4 * need, 64)
        while True:
            res = searcher.search(tq, min(k, n_docs), count=False, **order)
            addrs = [a for _, a in res.hits]
            hashes = searcher.fast_field_values("story_hash", addrs)
            groups: dict[int, tuple[Any, float | None]] = {}
            for (score, a), h in zip(res.hits, hashes):
                if h not in groups:
                    groups[h] = (a, None if order else score)
                    if len(groups) >= need:
                        break
            if len(groups) >= need or k >= n_docs:
                break
            k *= 4
        page = list(groups.items())[q.offset:need]
        return total, [(a, multi.get(h, 1), s) for h, (a, s) in page]

    def _multi_story_counts(self, searcher: tantivy.Searcher, tq: Query, lo: int, hi: int) -> dict[int, int]:
        """{story hash: matching articles} for stories with two or more matches, split by hash range
        when Tantivy's per-request bucket limit is hit (so the count stays exact)."""
        query = tq
        if lo != _MIN_I64 or hi != _MAX_I64:
            query = Query.boolean_query([(Occur.Must, tq), (Occur.Must, Query.range_query(
                self._schema, "story_hash", FieldType.Integer, lo, hi))])
        agg = {"s": {"terms": {"field": "story_hash", "size": 60_000, "segment_size": 60_000,
                               "min_doc_count": 2}}}
        try:
            out = searcher.aggregate(query, agg)["s"]
        except ValueError as e:
            if _BUCKET_LIMIT_HINT not in str(e).lower() or hi - lo < 1024:
                raise
            mid = lo + (hi - lo) // 2
            return {**self._multi_story_counts(searcher, tq, lo, mid),
                    **self._multi_story_counts(searcher, tq, mid + 1, hi)}
        if out.get("sum_other_doc_count"):  # more than `size` multi-article stories: split
            mid = lo + (hi - lo) // 2
            return {**self._multi_story_counts(searcher, tq, lo, mid),
                    **self._multi_story_counts(searcher, tq, mid + 1, hi)}
        return {int(b["key"]): int(b["doc_count"]) for b in out["buckets"]}

    def _hits(self, searcher: tantivy.Searcher, rows: list[tuple[Any, int | None, float | None]],
              node: Node | None) -> list[Hit]:
        if not rows:
            return []
        gens: dict[str, SnippetGenerator] = {}
        if node is not None:
            for f, chars in (("text", SNIPPET_CHARS), ("title", 100_000)):
                terms = self._tr.highlight_terms(node, searcher, f)
                if terms:
                    hq = Query.boolean_query([(Occur.Should, Query.term_query(self._schema, f, t)) for t in terms])
                    g = SnippetGenerator.create(searcher, hq, self._schema, f)
                    g.set_max_num_chars(chars)
                    gens[f] = g
        hits = []
        for addr, size, score in rows:
            doc = searcher.doc(addr)
            text = doc.get_first("text") or ""
            title = doc.get_first("title") or ""
            snippet = title_html = None
            if node is not None:
                snippet = _marked(gens["text"].snippet_from_doc(doc), text, ellipsis=True) if "text" in gens else None
                title_html = (_marked(gens["title"].snippet_from_doc(doc), title, ellipsis=False)
                              if "title" in gens else None) or html.escape(title, quote=True)
            if not snippet:
                snippet = plain_snippet(text[:600], SNIPPET_TOKENS)
            pub = doc.get_first("published")
            hits.append(Hit(
                id=doc.get_first("id"), url=doc.get_first("url"), title=title, source=doc.get_first("source"),
                language=doc.get_first("language"),
                published_at=datetime.fromtimestamp(pub, timezone.utc) if pub is not None and pub != NO_DATE else None,
                story_id=doc.get_first("story_id"), is_duplicate=bool(doc.get_first("is_dup")),
                topics=sorted(doc.get_all("topics")), snippet=snippet, title_html=title_html,
                story_size=size, score=score,
            ))
        return hits

    def timeline(self, q: SearchQuery, interval: Literal["day", "week"] = "day") -> list[TimelineBucket]:
        """Matching articles per UTC day (or ISO week, keyed by its Monday), oldest first, gaps as 0."""
        if interval not in ("day", "week"):
            raise ValueError("interval must be 'day' or 'week'")
        tq, _ = self._query(q.parsed(), q)
        # epoch day 4 (1970-01-05) is a Monday: offset 4 aligns 7-day buckets on Mondays
        hist = {"interval": 1} if interval == "day" else {"interval": 7, "offset": 4}
        agg = {"t": {"histogram": {"field": "day", "min_doc_count": 1, **hist}}}
        try:
            out = self._live().articles.searcher().aggregate(tq, agg)["t"]["buckets"]
        except ValueError as e:
            raise SearchBackendError(f"timeline failed: {e}") from e
        return fill_timeline({day_from_epoch(int(b["key"])): int(b["doc_count"]) for b in out}, q, interval)

    def facets(self, q: SearchQuery, fields: Sequence[str] = FACET_FIELDS,
               limit: int = 10) -> dict[str, list[tuple[str, int]]]:
        """Top values with counts of matching articles for each field (most frequent first)."""
        validate_facet_fields(fields)
        tq, _ = self._query(q.parsed(), q)
        agg = {f: {"terms": {"field": _FACET_FIELD[f], "size": 10_000, "segment_size": 10_000}} for f in fields}
        try:
            out = self._live().articles.searcher().aggregate(tq, agg) if fields else {}
        except ValueError as e:
            raise SearchBackendError(f"facets failed: {e}") from e
        result = {}
        for f in fields:
            rows = sorted(((str(b["key"]), int(b["doc_count"])) for b in out[f]["buckets"]), key=lambda r: (-r[1], r[0]))
            result[f] = rows[:limit]
        return result

    def count(self) -> int:
        return self._live().articles.searcher().num_docs

    def health(self) -> bool:
        try:
            self._live().articles.searcher()
            return True
        except (SearchBackendError, ValueError, OSError):
            return False

    def close(self) -> None:
        with self._lock:
            if self._gen is not None:
                self._drop_writers(self._gen)
            self._gen = None
            self._closed = True

    def __repr__(self) -> str:
        return f"TantivyBackend({str(self.path)!r})"


def _marked(snip: tantivy.Snippet, full: str, *, ellipsis: bool) -> str | None:
    """Escaped HTML of a Tantivy snippet with <mark>s, built like FTS5's (marks, then render_snippet).

    Tantivy reports byte offsets into the UTF-8 text."""
    fr = snip.fragment_range()
    frag = snip.fragment()
    if not frag:
        return None
    raw = full.encode("utf-8")
    start, end = (fr.start, fr.end) if ellipsis else (0, len(raw))
    pieces, pos = [], start
    for r in sorted(snip.highlighted(), key=lambda r: r.start):
        a, b = fr.start + r.start, fr.start + r.end
        if a < pos:
            continue
        pieces += [raw[pos:a].decode("utf-8", "replace"), MARK_OPEN, raw[a:b].decode("utf-8", "replace"), MARK_CLOSE]
        pos = b
    pieces.append(raw[pos:end].decode("utf-8", "replace"))
    text = "".join(pieces)
    if ellipsis:
        text = ("…" if start > 0 else "") + text.strip() + ("…" if end < len(raw) else "")
    return render_snippet(text)


def _doc_json(d: SearchDocument) -> dict:
    return {"id": d.id, "url": d.url, "title": d.title, "text": d.text, "source": d.source,
            "language": d.language, "author": d.author,
            "published_at": d.published_at.isoformat() if d.published_at else None,
            "topics": d.topics, "story_id": d.story_id, "is_duplicate": d.is_duplicate,
            "duplicate_of": d.duplicate_of}


def _doc_from_json(x: dict) -> SearchDocument:
    pub = x.get("published_at")
    return SearchDocument(**{**x, "published_at": datetime.fromisoformat(pub) if pub else None})
