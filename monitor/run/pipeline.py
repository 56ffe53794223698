"""The ingest pipeline: wires the pure stages (fetch, parse, extract, merge, dedup, cluster) to I/O.

`Pipeline.serve` is one loop that claims feeds in small batches as it has room, fetches feeds
and pages in two separate thread pools (a hanging feed never takes a page's slot, and at most
`host_concurrency` requests go to one host at a time: the loop only dispatches to hosts with a
free slot, so no thread ever sits waiting for a busy host; a fetch that turns slow moves out of
the regular slots, so hanging sites cannot crowd out healthy ones), extracts pages in worker processes
when asked, and stores the articles on the loop's thread, the database's only writer here, in
publication order (see `monitor.run.order`): released articles gather into a batch stored in
one transaction (`save_articles`) every `BATCH_SECONDS`, at `BATCH_MAX` articles, or as soon as
nothing else is in flight; a batch that fails is stored again article by article.

A feed is finished — articles stored, validators saved, next fetch scheduled, lease released —
as soon as its own pages are done, not when the others are. Failures stay local: an exception
while handling one feed or one article is recorded (fetch attempt, feed `last_error`) and the
loop goes on; a dead extraction process (OOM killer, a crash in lxml) is replaced and its page
retried once. An extraction that runs past `NEWSMON_EXTRACT_TIMEOUT` (a page that makes lxml
spin) is recorded as failed, its entry stored from the feed's text, and its pool killed and
replaced (the pool's other pages are retried once); inline extraction (one process) has no
deadline.

Crash safety: a feed's conditional-GET validators (ETag / Last-Modified) are saved only after
every entry of that feed has been stored, so a crash mid-feed means the next pass sees the same
entries again; entries already stored are recognised by URL and skipped. Finished feeds stay
finished: a restart only redoes the feeds that were in flight.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Protocol
from urllib.parse import urlsplit

from sqlalchemy import insert, select

if TYPE_CHECKING:
    from multiprocessing.queues import SimpleQueue

from monitor.clustering.engine import ClusterSettings, Features, compute_features
from monitor.clustering.store import Clusterer
from monitor.config import FeedsConfig, Settings
from monitor.net.fetch import FetchError, Fetcher, FetchResult
from monitor.net.policy import fetch_policy
from monitor.run.feedsync import sync_feeds
from monitor.run.order import LAST, PublicationOrder
from monitor.run.scheduling import next_fetch_time
from monitor.stages.extract import MIN_TEXT_CHARS, ExtractedPage, ExtractionError, extract_page, page_html
from monitor.stages.merge import build_candidate
from monitor.stages.parse import FeedEntry, FeedParseError, ParsedFeed, parse_feed
from monitor.stages.urls import safe_canonical
from monitor.storage.articles import ArticleCandidate, SaveOutcome, known_urls, save_articles
from monitor.storage.db import Database
from monitor.storage.models import Feed, FetchAttempt, utcnow
from monitor.run import metrics

__all__ = ["IngestSummary", "Pipeline", "FeedSource", "fetch_policy", "sync_feeds", "build_candidate"]

log = logging.getLogger(__name__)

RENEW_EVERY = 60.0  # seconds between lease renewals (the lease itself is 15 minutes)
# A fetch still running after this many seconds is slow (a hanging or trickling server): it
# moves out of the regular slots into an overflow of SLOW_SLOTS times as many (at least SLOW_MIN), so a crowd of
# slow sites cannot take the slots of healthy ones (every fetch still ends by its total timeout).
SLOW_AFTER = 3.0
SLOW_SLOTS = 3
SLOW_MIN = 64  # slow fetches cost a thread and a socket each, no CPU: allow a crowd of them
# Released articles are stored in batches (one transaction, a few statements for all of them):
# a batch goes when it is this old, this large, or when nothing else is in flight.
BATCH_SECONDS = 0.5
BATCH_MAX = 200


@dataclass
class IngestSummary:
    feeds_ok: int = 0
    feeds_not_modified: int = 0
    feeds_failed: int = 0
    entries: int = 0
    entries_known: int = 0
    new_articles: int = 0
    updated_articles: int = 0
    duplicates: int = 0
    pages_failed: int = 0
    fallbacks: int = 0
    failed_feeds: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class FeedSource(Protocol):
    """Where the loop gets feeds from (see `monitor.run.scheduling.FeedClaims`)."""

    once: bool

    def claim(self, limit: int) -> list[int]: ...
    def renew(self, feed_ids: list[int]) -> None: ...
    def release(self, feed_ids: list[int] | None = None) -> None: ...
    def seconds_until_due(self, cap: float) -> float: ...


@dataclass
class FixedFeeds:
    """A source that hands out a fixed list of feed ids once (no leases)."""

    feed_ids: list[int]
    once: bool = True

    def claim(self, limit: int) -> list[int]:
        batch, self.feed_ids = self.feed_ids[:limit], self.feed_ids[limit:]
        return batch

    def renew(self, feed_ids: list[int]) -> None:
        pass

    def release(self, feed_ids: list[int] | None = None) -> None:
        pass

    def seconds_until_due(self, cap: float) -> float:
        return cap


@dataclass(eq=False)
class FeedRun:
    """One feed being worked on: from its claim until its state is saved."""

    feed_id: int
    url: str
    etag: str | None
    last_modified: str | None
    fetch_pages: bool
    cohort: int
    started_at: datetime | None = None  # when its fetch began: the next fetch is planned from here
    result: FetchResult | None = None
    parsed: ParsedFeed | None = None
    outstanding: int = 0  # entries queued or in flight, not yet stored
    pages_pending: int = 0  # pages queued or being fetched
    new_articles: int = 0
    failed: str | None = None  # an article of it could not be stored: retry the feed later


@dataclass(eq=False)
class FeedFetch:
    run: FeedRun
    host: str = ""
    since: float = 0.0  # time.monotonic() when dispatched


@dataclass(eq=False)
class PageFetch:
    run: FeedRun
    entry: FeedEntry
    link: str
    page_url: str
    host: str = ""
    since: float = 0.0


@dataclass(eq=False)
class Extraction:
    run: FeedRun
    entry: FeedEntry
    link: str
    result: FetchResult
    pool: int  # generation of the process pool it was submitted to
    retried: bool = False
    running_since: float | None = None  # when the loop first saw it handed to a child (its deadline runs from then)
    submitted_at: float = 0.0


@dataclass(eq=False)
class Ready:
    """An article waiting for its turn to be stored."""

    run: FeedRun
    entry: FeedEntry
    candidate: ArticleCandidate | None


Job = FeedFetch | PageFetch | Extraction


def _extract_in_worker(content: bytes, url: str, find_date: bool, title: str | None,
                       settings: ClusterSettings) -> tuple[ExtractedPage | str, Features | None]:
    """Extraction plus the article's clustering features: both pure, both CPU-bound, so both
    run in the extraction processes and the storing process only decides."""
    try:
        page = extract_page(content, url, find_date=find_date)
    except ExtractionError as exc:
        return f"extraction: {exc}", None
    if len(page.text) < MIN_TEXT_CHARS:
        return page, None
    return page, compute_features((title or page.title or "").strip()[:2000], page.text, settings)


def _worker_init(pids: SimpleQueue) -> None:
    """Extraction processes are forked from a process that catches SIGTERM to stop gently;
    they must not inherit that, or the pool could never terminate them (a broken pool
    terminates its remaining workers and waits for them). Each child reports its pid: the
    executor cannot say which child runs a stuck call, so a stuck pool is killed whole."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    pids.put(os.getpid())


def _new_extraction_pool(workers: int) -> tuple[ProcessPoolExecutor, SimpleQueue]:
    context = multiprocessing.get_context()
    pids = context.SimpleQueue()
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init, initargs=(pids,)), pids


def _kill_children(pids: SimpleQueue) -> None:
    """SIGKILL the live children that reported to `pids` (a child spinning in C code may never
    see a gentler signal). Only this process's own live children are touched, so a pid the
    system has since reused for another process is never signalled."""
    reported = set()
    while not pids.empty():
        reported.add(pids.get())
    for proc in multiprocessing.active_children():
        if proc.pid in reported:
            proc.kill()


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class _HostQueues:
    """Jobs waiting per host; hands out the best job of a host with a free slot."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self.busy: Counter[str] = Counter()
        self._queues: dict[str, list] = {}
        self._seq = itertools.count()

    def push(self, host: str, priority, job) -> None:
        heapq.heappush(self._queues.setdefault(host, []), (priority, next(self._seq), job))

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def pop(self):
        """The job with the best priority among hosts below their limit, or None."""
        best_host, best = None, None
        for host, queue in self._queues.items():
            if queue and self.busy[host] < self.per_host and (best is None or queue[0][:2] < best[:2]):
                best_host, best = host, queue[0]
        if best_host is None:
            return None
        heapq.heappop(self._queues[best_host])
        if not self._queues[best_host]:
            del self._queues[best_host]
        return best[2]

    def drop(self, predicate) -> list:
        dropped = []
        for host in list(self._queues):
            keep = [item for item in self._queues[host] if not predicate(item[2]) or dropped.append(item[2])]
            heapq.heapify(keep)
            if keep:
                self._queues[host] = keep
            else:
                del self._queues[host]
        return dropped


class Pipeline:
    """Everything the ingest loop needs; reusable across passes (the scheduler keeps one)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        feeds_config: FeedsConfig,
        *,
        workers: int = 1,
        fetch_threads: int | None = None,
        page_threads: int | None = None,
        progress: Callable[[str, int], None] | None = None,
        clusterer: Clusterer | None = None,
        claim_batch: int = 10,
        max_feeds: int | None = None,
        hold: float | None = None,
    ):
        self.db = db
        self.settings = settings
        self.rules = feeds_config.topics
        self.policy = fetch_policy(settings)
        self.fetcher = Fetcher(self.policy)
        self.feed_threads = fetch_threads or settings.feed_fetches
        self.page_threads = page_threads or settings.page_fetches
        self.feed_slots = self.feed_threads + max(SLOW_MIN, SLOW_SLOTS * self.feed_threads)  # regular + slow overflow
        self.page_slots = self.page_threads + max(SLOW_MIN, SLOW_SLOTS * self.page_threads)
        self.feed_pool = ThreadPoolExecutor(max_workers=self.feed_slots, thread_name_prefix="fetch-feed")
        self.page_pool = ThreadPoolExecutor(max_workers=self.page_slots, thread_name_prefix="fetch-page")
        self.workers = workers
        self.extractor: ProcessPoolExecutor | None = None
        if workers > 1:
            self.extractor, self._extractor_pids = _new_extraction_pool(workers)
        self._pool_generation = 0
        self.extract_timeout = settings.extract_timeout
        self.progress = progress or (lambda what, n: None)
        self.clusterer = clusterer or Clusterer(db, ClusterSettings(**feeds_config.clustering))
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.claim_batch = claim_batch
        self.max_feeds = max_feeds or 2 * self.feed_threads
        self.max_pages = self.page_threads + 2 * max(1, workers)  # fetched or fetching, not yet extracted
        self.hold = settings.hold_seconds if hold is None else hold
        self._attempts: list[dict] = []  # fetch-attempt rows, written with the next transaction
        self._lock = threading.Lock()  # guards _periodic registration only
        self._periodic: list[list] = []

    def close(self) -> None:
        # Closing the HTTP client first ends fetches still hanging on a slow server.
        self.fetcher.close()
        self.feed_pool.shutdown(wait=True, cancel_futures=True)
        self.page_pool.shutdown(wait=True, cancel_futures=True)
        if self.extractor is not None:
            self.extractor.shutdown(wait=True, cancel_futures=True)

    def every(self, seconds: float, job: Callable[[], None]) -> None:
        """Run `job` on the loop's thread about every `seconds` while serving (housekeeping)."""
        with self._lock:
            self._periodic.append([seconds, time.monotonic() + seconds, job])

    # -- the loop ----------------------------------------------------------------------------

    def run(self, feed_ids: list[int]) -> IngestSummary:
        """One pass over exactly these feeds (no leases), e.g. for benchmarks."""
        return self.serve(FixedFeeds(list(feed_ids)), stop=threading.Event())

    def serve(self, source: FeedSource, *, stop: threading.Event, poll: float = 60.0, stop_grace: float = 10.0,
              on_feed_done: Callable[[FeedRun], None] | None = None) -> IngestSummary:
        """Claim, fetch, extract and store until `stop` is set (or, for a `once` source, nothing is left).

        With `stop` set, nothing new is started, the feeds already started get `stop_grace`
        seconds to finish, and the leases of the rest are given back.
        """
        self.summary = summary = IngestSummary()
        self._on_feed_done = on_feed_done
        self._order: PublicationOrder[Ready] = PublicationOrder(self.hold)
        self._batch: list[Ready] = []  # released, in order, not stored yet
        self._batch_since = 0.0
        self._runs: dict[int, FeedRun] = {}
        self._pending: dict[Future, Job] = {}
        self._feeds = _HostQueues(self.policy.per_host_concurrency)
        self._pages = _HostQueues(self.policy.per_host_concurrency)
        self._busy = self._feeds.busy = self._pages.busy  # one count per host for feeds and pages
        self._feeds_fetching = 0
        self._page_fetching = 0
        self._extracting = 0
        exhausted = False
        stopped_at: float | None = None
        next_claim = 0.0
        next_renew = time.monotonic() + RENEW_EVERY
        try:
            while True:
                now = time.monotonic()
                if stop.is_set():
                    self._give_back(source)
                    stopped_at = stopped_at or now
                    if now - stopped_at > stop_grace and self._runs:
                        # Hanging fetches must not keep a stopping process alive: their feeds
                        # are not finished, so they are simply fetched again by whoever is next.
                        log.warning("stopping: giving up %d feed(s) still in flight", len(self._runs))
                        self._store_batch()
                        if any(type(job) is Extraction for job in self._pending.values()):
                            # A child still busy on a page would keep close() waiting for it.
                            self._replace_pool(self._pool_generation, kill=True)
                        ids = list(self._runs)
                        self._runs.clear()
                        self._guard("release", lambda: source.release(ids), None)
                        break
                elif not exhausted and now >= next_claim and self._in_hand(now) < self.max_feeds:
                    room = min(self.claim_batch, self.max_feeds - self._in_hand(now))
                    ids = self._guard("claim", lambda: source.claim(room), [])
                    if ids:
                        self._start_feeds(ids)
                    if len(ids) < room:
                        if source.once:
                            exhausted = True
                        else:
                            wait_for = self._guard("next due", lambda: source.seconds_until_due(poll), poll)
                            next_claim = now + max(1.0, wait_for)
                if now >= next_renew and self._runs:
                    self._guard("lease renewal", lambda: source.renew(list(self._runs)), None)
                    next_renew = now + RENEW_EVERY
                self._run_periodic(now)
                self._dispatch()
                if not self._pending and not self._runs and (exhausted or stop.is_set()):
                    break
                timeout = 0.25 if self._pending or self._order.waiting or self._batch else max(0.05, min(1.0, next_claim - now))
                if self._pending:
                    done, _ = wait(list(self._pending), timeout=timeout, return_when=FIRST_COMPLETED)
                else:
                    stop.wait(timeout)
                    done = set()
                for fut in done:
                    self._handle(self._pending.pop(fut), fut)
                if self._extracting:
                    self._check_extractions(time.monotonic())
                self._release()
                now = time.monotonic()
                if self._batch and (not self._pending or len(self._batch) >= BATCH_MAX
                                    or now - self._batch_since >= BATCH_SECONDS):
                    self._store_batch()
                if (self._runs and not self._pending and not len(self._feeds) and not len(self._pages)
                        and not self._order.waiting and not self._batch):
                    self._unstick()
        finally:
            if self._runs:  # an exception escaped the loop: nothing is finished, give the leases back
                self._guard("release", lambda: source.release(list(self._runs)), None)
        if self._attempts:
            with self.db.session() as s:
                self._write_attempts(s)
        return summary

    def _unstick(self) -> None:
        """Feeds with nothing left in flight that did not finish (a bug, not a bad feed): fail them, go on."""
        for run in list(self._runs.values()):
            if run.parsed is not None and run.outstanding == 0:
                self._guard("finishing a feed", lambda: self._maybe_finish(run), None)
            else:
                log.error("feed %s: nothing in flight but %d entries outstanding; retried later", run.url, run.outstanding)
                self._guard("recording a feed failure",
                            lambda: self._feed_failed(run, RuntimeError("internal error: entries lost in flight"), soft=True), None)
            self._forget(run)

    def _guard(self, what: str, call, default):
        try:
            return call()
        except Exception as exc:  # the database may be away for a moment: try again next round
            log.warning("%s failed: %s", what, exc)
            return default

    def _run_periodic(self, now: float) -> None:
        for item in self._periodic:
            seconds, due, job = item
            if now >= due:
                item[1] = now + seconds
                self._guard(getattr(job, "__name__", "periodic job"), job, None)

    def _give_back(self, source: FeedSource) -> None:
        """On stop: feeds not started yet go back to the pool of due feeds."""
        waiting = self._feeds.drop(lambda job: True)
        if waiting:
            ids = [job.run.feed_id for job in waiting]
            for job in waiting:
                self._runs.pop(job.run.feed_id, None)
                self._order.feed_parsed(job.run.cohort, job.run.feed_id)
            self._guard("release", lambda: source.release(ids), None)

    def _start_feeds(self, feed_ids: list[int]) -> None:
        with self.db.session() as s:
            rows = s.execute(select(Feed.id, Feed.url, Feed.etag, Feed.last_modified, Feed.fetch_pages)
                             .where(Feed.id.in_(feed_ids))).all()
        cohort = self._order.open_cohort([r.id for r in rows])
        for r in sorted(rows, key=lambda r: r.id):
            run = FeedRun(r.id, r.url, r.etag, r.last_modified, r.fetch_pages, cohort)
            self._runs[r.id] = run
            self._feeds.push(_host(r.url), 0, FeedFetch(run))

    def _in_hand(self, now: float) -> int:
        """Feeds that still need this worker's fetch slots: queued, fetching (not slow) or with pages to fetch.

        Slow fetches and feeds whose articles only wait for their turn to be stored do not count:
        they must not stop the worker from claiming more.
        """
        with_pages = sum(1 for run in self._runs.values() if run.pages_pending)
        return len(self._feeds) + self._fresh(FeedFetch, now) + with_pages

    def _fresh(self, kind: type, now: float) -> int:
        """In-flight fetches of `kind` that are not (yet) slow."""
        return sum(1 for job in self._pending.values() if type(job) is kind and now - job.since < SLOW_AFTER)

    def _dispatch(self) -> None:
        now = time.monotonic()
        fresh = self._fresh(FeedFetch, now)
        while fresh < self.feed_threads and self._feeds_fetching < self.feed_slots:
            job = self._feeds.pop()
            if job is None:
                break
            job.run.started_at = utcnow()
            self._submit_fetch(self.feed_pool, job, job.run.url, etag=job.run.etag,
                               last_modified=job.run.last_modified, expect="feed")
            self._feeds_fetching += 1
            fresh += 1
        # Pages go oldest first across all feeds, so they finish roughly in the order
        # PublicationOrder releases them to the store.
        fresh = self._fresh(PageFetch, now)
        while (fresh < self.page_threads and self._page_fetching < self.page_slots
               and fresh + self._extracting < self.max_pages):
            job = self._pages.pop()
            if job is None:
                break
            self._submit_fetch(self.page_pool, job, job.page_url, expect="html")
            self._page_fetching += 1
            fresh += 1

    def _submit_fetch(self, pool: ThreadPoolExecutor, job: FeedFetch | PageFetch, url: str, **kw) -> None:
        host = _host(url)
        self._busy[host] += 1
        job.host = host  # which slot to free when it is done
        job.since = time.monotonic()
        self._pending[pool.submit(self.fetcher.fetch, url, **kw)] = job

    def _handle(self, job: Job, fut: Future) -> None:
        if isinstance(job, (FeedFetch, PageFetch)):
            self._busy[job.host] -= 1
        if isinstance(job, PageFetch):
            self._page_fetching -= 1
            job.run.pages_pending -= 1
        elif isinstance(job, Extraction):
            self._extracting -= 1
        if isinstance(job, FeedFetch):
            self._feeds_fetching -= 1
            try:
                self._on_feed_fetched(job.run, fut)
            except Exception as exc:
                log.exception("feed %s: unexpected error", job.run.url)
                self._feed_crashed(job.run, exc)
            self.progress("feed", 1)
        elif isinstance(job, PageFetch):
            try:
                self._on_page_fetched(job, fut)
            except Exception as exc:
                log.exception("page %s: unexpected error", job.page_url)
                self._page_crashed(job.run, job.entry, job.link, exc)
        else:
            try:
                self._on_extracted(job, fut)
            except Exception as exc:
                log.exception("page %s: unexpected error after extraction", job.link)
                self._page_crashed(job.run, job.entry, job.link, exc)

    # -- feed stage --------------------------------------------------------------------------

    def _on_feed_fetched(self, run: FeedRun, fut: Future) -> None:
        """Parse the feed and queue the pages of entries not seen before."""
        try:
            result: FetchResult = fut.result()
        except FetchError as exc:
            self._feed_failed(run, exc)
            return
        if result.not_modified:
            self._order.feed_parsed(run.cohort, run.feed_id)
            run.result = result
            self._record(run.feed_id, "feed", run.url, result, "not_modified")
            self.summary.feeds_not_modified += 1
            self._feed_done(run, result, changed=False)
            return
        try:
            parsed = parse_feed(result.content, url=result.final_url, headers=result.headers)
        except FeedParseError as exc:
            self._record(run.feed_id, "feed", run.url, result, "error", "parse", str(exc))
            self._feed_failed(run, exc, result=result)
            return
        self._record(run.feed_id, "feed", run.url, result, "ok", None, parsed.bozo_error)
        run.result, run.parsed = result, parsed
        with self.db.session() as s:
            feed = s.get(Feed, run.feed_id)
            feed.title = parsed.title or feed.title
            feed.site_url = parsed.link or feed.site_url
            feed.bozo_error = parsed.bozo_error
        links = [safe_canonical(entry.link or "", result.final_url) if entry.link else None for entry in parsed.entries]
        with self.db.session() as s:
            seen_links = known_urls(s, links)  # one query for the whole feed
        for entry, link in zip(parsed.entries, links):
            self.summary.entries += 1
            if link and link in seen_links:
                self.summary.entries_known += 1
                continue
            if link:
                seen_links.add(link)
            run.outstanding += 1
            self._order.started(id(entry), entry.published)
            if link is None or not run.fetch_pages:
                self._store(run, entry, link, None, None)
                continue
            page_url = entry.link if entry.link.startswith("http") else link
            self._pages.push(_host(page_url), (entry.published or LAST, link), PageFetch(run, entry, link, page_url))
            run.pages_pending += 1
        self._order.feed_parsed(run.cohort, run.feed_id)
        self._maybe_finish(run)

    def _maybe_finish(self, run: FeedRun) -> None:
        if run.parsed is not None and run.outstanding == 0 and run.feed_id in self._runs:
            if run.failed:
                self._feed_failed(run, RuntimeError(run.failed), soft=True)
            else:
                self._finish_feed(run, self.summary)

    def _feed_failed(self, run: FeedRun, exc: Exception, result: FetchResult | None = None, *, soft: bool | None = None) -> None:
        self._order.feed_parsed(run.cohort, run.feed_id)
        if result is None:
            self._record(run.feed_id, "feed", run.url, None, "error", getattr(exc, "kind", "error"), str(exc),
                         status=getattr(exc, "status", None))
        self.summary.feeds_failed += 1
        self.summary.failed_feeds.append(f"{run.url}: {exc}")
        with self.db.session() as s:
            self._write_attempts(s)
            feed = s.get(Feed, run.feed_id)
            now = utcnow()
            feed.consecutive_failures += 1
            feed.last_fetched_at = now
            feed.last_status = "error"
            feed.last_error = str(exc)[:2000]
            soft = bool(getattr(exc, "soft", False)) if soft is None else soft
            feed.next_fetch_at = next_fetch_time(
                run.started_at or now, feed.interval_minutes, failures=feed.consecutive_failures, soft=soft,
                retry_after=getattr(exc, "retry_after", None), unchanged_streak=0,
            )
            feed.claimed_by = feed.claimed_until = None
        self._forget(run)

    def _feed_crashed(self, run: FeedRun, exc: Exception) -> None:
        """An unexpected error while handling the feed itself: record it, retry the feed later."""
        if run.outstanding:  # its entries already queued are stored; the feed fails when they are done
            run.failed = f"internal error: {type(exc).__name__}: {exc}"
            self._order.feed_parsed(run.cohort, run.feed_id)
            if run.parsed is None:
                run.parsed = ParsedFeed(None, None, [], None, None, None)
            return
        self._guard("recording a feed failure",
                    lambda: self._feed_failed(run, RuntimeError(f"internal error: {type(exc).__name__}: {exc}"), soft=True),
                    None)
        self._forget(run)

    def _feed_done(self, run: FeedRun, result: FetchResult, *, changed: bool) -> None:
        with self.db.session() as s:
            self._write_attempts(s)
            feed = s.get(Feed, run.feed_id)
            now = utcnow()
            feed.last_fetched_at = feed.last_success_at = now
            feed.consecutive_failures = 0
            feed.last_status = "not_modified" if result.not_modified else "ok"
            feed.last_error = None
            if changed:
                feed.unchanged_streak = 0
                feed.last_new_article_at = now
            else:
                feed.unchanged_streak += 1
            feed.etag = result.etag or (feed.etag if result.not_modified else None)
            feed.last_modified = result.last_modified or (feed.last_modified if result.not_modified else None)
            if run.parsed is not None:
                feed.ttl_minutes = run.parsed.ttl_minutes
            feed.next_fetch_at = next_fetch_time(
                run.started_at or now, feed.interval_minutes, failures=0, soft=False, retry_after=None,
                unchanged_streak=feed.unchanged_streak, ttl_minutes=feed.ttl_minutes,
            )
            feed.claimed_by = feed.claimed_until = None
        self._forget(run)

    def _finish_feed(self, run: FeedRun, summary: IngestSummary) -> None:
        summary.feeds_ok += 1
        self._feed_done(run, run.result, changed=run.new_articles > 0)

    def _forget(self, run: FeedRun) -> None:
        if self._runs.pop(run.feed_id, None) is not None and self._on_feed_done is not None:
            self._on_feed_done(run)

    # -- page stage --------------------------------------------------------------------------

    def _on_page_fetched(self, job: PageFetch, fut: Future) -> None:
        run, entry, link = job.run, job.entry, job.link
        try:
            result: FetchResult = fut.result()
        except FetchError as exc:
            self._record(run.feed_id, "page", entry.link or link, None, "error", exc.kind, str(exc), status=exc.status)
            self.summary.pages_failed += 1
            self._store(run, entry, link, None, None)
            return
        if self.extractor is not None:
            self._submit_extraction(Extraction(run, entry, link, result, self._pool_generation))
            return
        # One process: features are computed when the article is clustered (no gain in doing it here).
        try:
            page = extract_page(result.content, result.final_url, find_date=entry.published is None)
        except ExtractionError as exc:
            page = f"extraction: {exc}"
        self._finish_page(run, entry, link, result, (page, None))

    def _submit_extraction(self, job: Extraction) -> None:
        args = (job.result.content, job.result.final_url, job.entry.published is None, job.entry.title, self.clusterer.settings)
        try:
            fut = self.extractor.submit(_extract_in_worker, *args)
        except BrokenProcessPool:
            self._replace_pool(job.pool)
            job.pool = self._pool_generation
            fut = self.extractor.submit(_extract_in_worker, *args)
        job.running_since = None
        job.submitted_at = time.monotonic()
        self._pending[fut] = job
        self._extracting += 1

    def _replace_pool(self, generation: int, *, kill: bool = False) -> None:
        """A child of the extraction pool died (or, with `kill`, is stuck and is killed here):
        every later submit would fail, so start a new pool. The old pool's other pages come
        back through `_on_extracted` as BrokenProcessPool (or cancelled) and are retried once."""
        if generation != self._pool_generation:
            return  # already replaced after this pool broke
        if not kill:
            log.warning("an extraction process died; starting a new pool")
        old, old_pids = self.extractor, self._extractor_pids
        self.extractor, self._extractor_pids = _new_extraction_pool(self.workers)
        self._pool_generation += 1
        if kill:
            # The executor cannot cancel a running call nor say which child runs it: kill them all.
            _kill_children(old_pids)
        old.shutdown(wait=False, cancel_futures=True)

    def _check_extractions(self, now: float) -> None:
        """Give every extraction handed to a child `extract_timeout` seconds; past that, the page
        counts as an extraction failure (its entry falls back to the feed's text) and the pool is
        replaced, killing the stuck child."""
        stuck: tuple[Future, Extraction] | None = None
        for fut, job in self._pending.items():
            if type(job) is not Extraction:
                continue
            if job.running_since is None and fut.running():
                # A pool hands a call to its children's queue (running()) just before a child
                # takes it, so the deadline starts about when the extraction does.
                job.running_since = now
            # Backstop: a call never handed to a child (its pool was killed before it could
            # answer, or its children never started) gets twice the time from its submission.
            deadline = job.running_since + self.extract_timeout if job.running_since is not None else job.submitted_at + 2 * self.extract_timeout
            if stuck is None and now > deadline:
                stuck = (fut, job)
        if stuck is None:
            return
        fut, job = stuck
        del self._pending[fut]
        self._extracting -= 1
        if job.pool != self._pool_generation:
            # Its pool was already replaced and never answered for it: retried once, as for a dead process.
            if not job.retried:
                job.retried = True
                job.pool = self._pool_generation
                self._submit_extraction(job)
                return
        log.warning("extraction of %s still running after %g s (NEWSMON_EXTRACT_TIMEOUT): killing its process pool, starting a new one",
                    job.link, self.extract_timeout)
        self._replace_pool(job.pool, kill=True)
        try:
            self._finish_page(job.run, job.entry, job.link, job.result,
                              (f"extraction: timed out after {self.extract_timeout:g} s (NEWSMON_EXTRACT_TIMEOUT)", None))
        except Exception as exc:
            log.exception("page %s: unexpected error after an extraction timeout", job.link)
            self._page_crashed(job.run, job.entry, job.link, exc)

    def _on_extracted(self, job: Extraction, fut: Future) -> None:
        try:
            extracted = fut.result()
        except (BrokenProcessPool, CancelledError):  # cancelled: its pool was shut down on being replaced
            self._replace_pool(job.pool)
            if not job.retried:
                job.retried = True
                job.pool = self._pool_generation
                self._submit_extraction(job)
                return
            extracted = ("extraction: the extraction process died twice on this page", None)
        except Exception as exc:  # anything else raised in the worker must not stop the pass
            extracted = (f"extraction: {exc!r}", None)
        self._finish_page(job.run, job.entry, job.link, job.result, extracted)

    def _finish_page(self, run: FeedRun, entry: FeedEntry, link: str, result: FetchResult, extracted) -> None:
        page, features = extracted
        if isinstance(page, str):
            self._record(run.feed_id, "page", result.url, result, "error", "extraction", page)
            self.summary.pages_failed += 1
            page = None
        else:
            self._record(run.feed_id, "page", result.url, result, "ok")
        self._store(run, entry, link, result, page, features)

    def _page_crashed(self, run: FeedRun, entry: FeedEntry, link: str, exc: Exception) -> None:
        """An unexpected error around one page: recorded; the entry falls back to the feed's text."""
        self._record(run.feed_id, "page", link, None, "error", "internal", f"{type(exc).__name__}: {exc}")
        self.summary.pages_failed += 1
        try:
            self._store(run, entry, link, None, None)
        except Exception as exc2:
            self._entry_lost(run, entry, exc2)

    # -- store stage -------------------------------------------------------------------------

    def _store(self, run: FeedRun, entry: FeedEntry, link: str | None, result: FetchResult | None,
               page: ExtractedPage | None, features: Features | None = None) -> None:
        """Queue the entry's article; it is saved once no earlier-dated entry is still in flight."""
        self._order.done(id(entry))
        raw = page_html(result.content, result.headers.get("content-type")) if result is not None and page is not None else None
        cand = build_candidate(entry, link, result.final_url if result is not None else None, page, run.feed_id, self.rules,
                               page_html=raw)
        if cand is not None:
            if features is not None and page is not None and cand.text is page.text:
                self.clusterer.prime(cand.title, cand.content_hash, features)
            if cand.text_source != "page":
                self.summary.fallbacks += 1
        # Ties on date and canonical URL (one article linked from two feeds) go by fetched URL
        # and feed, not by which page answered first: the stored row is the same under any timing.
        key = f"{cand.canonical_url}\x00{cand.url}\x00{run.feed_id:012d}" if cand else (link or "")
        self._order.ready(run.cohort, cand.published_at if cand else entry.published, key, Ready(run, entry, cand))

    def _release(self, *, everything: bool = False) -> None:
        """Move the articles whose turn has come, in order, to the batch being stored."""
        for ready in self._order.release(everything=everything):
            if ready.candidate is None:  # nothing to store (no link, no text)
                ready.run.outstanding -= 1
                self._after_entry(ready.run)
                continue
            if not self._batch:
                self._batch_since = time.monotonic()
            self._batch.append(ready)
            if len(self._batch) >= BATCH_MAX:
                self._store_batch()

    def _after_entry(self, run: FeedRun) -> None:
        try:
            self._maybe_finish(run)
        except Exception as exc:
            log.exception("feed %s: could not save its state", run.url)
            self._guard("recording a feed failure", lambda exc=exc: self._feed_failed(run, exc, soft=True), None)
            self._forget(run)

    def _store_batch(self) -> None:
        """Store the batch in one transaction; if that fails, each article in a transaction of its
        own, so one bad article costs only itself (the clusterer rebuilds its engine from the
        database after the failed transaction, so it holds only what was committed)."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            outcomes = self._save([ready.candidate for ready in batch])
        except Exception as exc:
            if len(batch) == 1:
                self._entry_lost(batch[0].run, batch[0].entry, exc)
                self._after_entry(batch[0].run)
                return
            log.warning("a batch of %d articles could not be stored (%s); storing them one by one", len(batch), exc)
            for ready in batch:
                try:
                    (outcome,) = self._save([ready.candidate])
                except Exception as exc1:
                    self._entry_lost(ready.run, ready.entry, exc1)
                else:
                    self._count(ready.run, outcome)
                self._after_entry(ready.run)
            return
        for ready, outcome in zip(batch, outcomes):
            self._count(ready.run, outcome)
        for ready in batch:
            self._after_entry(ready.run)

    def _entry_lost(self, run: FeedRun, entry: FeedEntry, exc: Exception) -> None:
        """An article could not be stored: recorded, and its feed is retried later (validators not saved)."""
        log.warning("feed %s: could not store %s: %s", run.url, entry.link, exc)
        self._record(run.feed_id, "page", entry.link or run.url, None, "error", "store", f"{type(exc).__name__}: {exc}")
        run.failed = f"could not store {entry.link}: {type(exc).__name__}: {exc}"
        run.outstanding -= 1

    def _save(self, candidates: list[ArticleCandidate]) -> list[SaveOutcome]:
        """One transaction: the queued fetch-attempt rows and the candidates (the rows are queued
        again if it rolls back)."""
        attempts, self._attempts = self._attempts, []
        try:
            with self.db.session() as s:
                if attempts:
                    s.execute(insert(FetchAttempt.__table__), attempts)
                return save_articles(s, candidates, self.clusterer)
        except Exception:
            self._attempts = attempts + self._attempts
            raise

    def _count(self, run: FeedRun, outcome: SaveOutcome) -> None:
        run.outstanding -= 1
        metrics.article_saved(outcome.status)
        if outcome.status == "new":
            self.summary.new_articles += 1
            run.new_articles += 1
        elif outcome.status == "updated":
            self.summary.updated_articles += 1
        else:
            self.summary.duplicates += 1

    def _record(self, feed_id, kind, url, result: FetchResult | None, outcome, error_kind=None, error=None, status=None):
        """Queue a fetch-attempt row; it is written with the next transaction (no commit of its own)."""
        metrics.fetch_recorded(kind, outcome, result.elapsed_ms if result is not None else None, error_kind)
        self._attempts.append(dict(
            feed_id=feed_id, kind=kind, url=url[:2048], started_at=utcnow(), outcome=outcome, error_kind=error_kind,
            error=(error or None) and str(error)[:2000],
            http_status=result.status if result is not None else status,
            elapsed_ms=result.elapsed_ms if result is not None else None,
            bytes=len(result.content) if result is not None else None,
        ))

    def _write_attempts(self, session) -> None:
        if self._attempts:
            attempts, self._attempts = self._attempts, []
            session.execute(insert(FetchAttempt.__table__), attempts)  # one executemany
