"""The ingest pipeline: wires the pure stages (fetch, parse, extract, tag, dedup, cluster) to I/O.

One pass (`Pipeline.run`) takes a set of feeds, fetches them concurrently, fetches the linked
pages of entries we have not seen (oldest first), extracts them (in worker processes when
asked), and stores each article in its own transaction on the main thread, the database's only
writer here, in publication order (see PublicationOrder), so results do not depend on timing.

Crash safety: a feed's conditional-GET validators (ETag / Last-Modified) are saved only after
every entry of that feed has been stored, so a crash mid-feed means the next pass sees the same
entries again; entries already stored are recognised by URL and skipped.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait, FIRST_COMPLETED
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from monitor.clustering.store import Clusterer
from monitor.config import FeedConfig, FeedsConfig, Settings
from monitor.storage.db import Database
from monitor.stages.extract import MIN_TEXT_CHARS, ExtractedPage, ExtractionError, extract_page, page_html
from monitor.net.fetch import FetchError, Fetcher, FetchPolicy, FetchResult
from monitor.storage.models import Feed, FetchAttempt, utcnow
from monitor.stages.parse import FeedEntry, FeedParseError, ParsedFeed, parse_feed
from monitor.stages.sanitize import html_to_text, sanitize_html
from monitor.run import metrics
from monitor.run.scheduling import next_fetch_time
from monitor.storage.articles import ArticleCandidate, known_article_id, save_article
from monitor.clustering.engine import ClusterSettings, Features, compute_features
from monitor.stages.textnorm import content_hash
from monitor.stages.topics import tag_topics
from monitor.stages.urls import safe_canonical, source_of

log = logging.getLogger(__name__)


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


@dataclass
class _FeedRun:
    feed_id: int
    url: str
    result: FetchResult | None = None
    parsed: ParsedFeed | None = None
    new_articles: int = 0


class PublicationOrder:
    """Releases a pass's articles oldest first while pages are still being fetched.

    Fetches finish in any order, but clustering is incremental: the result must not depend on
    which page happened to arrive first. The feed tells each entry's date before its page is
    fetched, so an article is stored as soon as no earlier-dated entry is still in flight; ties
    are broken by URL, undated entries go last. The same feeds thus give the same stories on
    any machine, under any load.
    """

    _LAST = datetime.max.replace(tzinfo=timezone.utc)

    def __init__(self, feeds: int = 0) -> None:
        self._pending: dict[int, datetime] = {}
        self._ready: list[tuple[datetime, str, int, object]] = []
        self._seq = 0
        self._feeds_unparsed = feeds  # their entries' dates are unknown yet: nothing can be released

    def feed_parsed(self) -> None:
        self._feeds_unparsed -= 1

    def started(self, entry: FeedEntry) -> None:
        self._pending[id(entry)] = entry.published or self._LAST

    def done(self, entry: FeedEntry) -> None:
        self._pending.pop(id(entry), None)

    def ready(self, published: datetime | None, key: str, payload) -> None:
        self._seq += 1
        heapq.heappush(self._ready, (published or self._LAST, key, self._seq, payload))

    def release(self, *, everything: bool = False):
        if self._feeds_unparsed > 0 and not everything:
            return
        horizon = None if everything or not self._pending else min(self._pending.values())
        while self._ready and (horizon is None or self._ready[0][0] < horizon):
            yield heapq.heappop(self._ready)[3]


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        total_timeout=settings.total_timeout,
        max_bytes=settings.max_bytes,
        max_redirects=settings.max_redirects,
        user_agent=settings.user_agent,
        allow_hosts=settings.allow_hosts,
        min_host_interval=settings.min_host_interval,
    )


def sync_feeds(db: Database, feeds: Iterable[FeedConfig]) -> list[int]:
    """Make sure every configured feed has a row; update its settings. Returns the feed ids."""
    ids = []
    with db.session() as s:
        for fc in feeds:
            feed = s.scalar(select(Feed).where(Feed.url == fc.url))
            if feed is None:
                feed = Feed(url=fc.url, next_fetch_at=utcnow())
                try:
                    with s.begin_nested():
                        s.add(feed)
                except IntegrityError:  # another worker added it just now
                    feed = s.scalar(select(Feed).where(Feed.url == fc.url))
            feed.name = fc.name or feed.name
            feed.interval_minutes = fc.interval_minutes
            feed.fetch_pages = fc.fetch_pages
            feed.enabled = fc.enabled
            feed.topics_hint = list(fc.topics_hint)
            s.flush()
            ids.append(feed.id)
    return ids


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


class Pipeline:
    """Everything one ingest pass needs; reusable across passes (the scheduler keeps one)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        feeds_config: FeedsConfig,
        *,
        workers: int = 1,
        fetch_threads: int = 8,
        progress: Callable[[str, int], None] | None = None,
        clusterer: Clusterer | None = None,
    ):
        self.db = db
        self.settings = settings
        self.rules = feeds_config.topics
        self.fetcher = Fetcher(fetch_policy(settings))
        self.threads = ThreadPoolExecutor(max_workers=fetch_threads, thread_name_prefix="fetch")
        self.extractor: Executor | None = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        self.progress = progress or (lambda what, n: None)
        self.clusterer = clusterer or Clusterer(db, ClusterSettings(**feeds_config.clustering))
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._attempts: list[FetchAttempt] = []
        self._queued = 0
        self.max_pages_in_flight = 2 * fetch_threads

    def close(self) -> None:
        self.threads.shutdown(wait=True, cancel_futures=True)
        if self.extractor is not None:
            self.extractor.shutdown(wait=True, cancel_futures=True)
        self.fetcher.close()

    # -- one pass ----------------------------------------------------------------------------

    def run(self, feed_ids: list[int]) -> IngestSummary:
        summary = IngestSummary()
        with self.db.session() as s:
            feeds = {f.id: (f.url, f.etag, f.last_modified) for f in s.scalars(select(Feed).where(Feed.id.in_(feed_ids)))}
        runs: dict[int, _FeedRun] = {}
        pending: dict[Future, tuple] = {}
        for fid, (url, etag, lm) in feeds.items():
            runs[fid] = _FeedRun(fid, url)
            fut = self.threads.submit(self._fetch_feed, url, etag, lm)
            pending[fut] = ("feed", fid)
        self.progress("total", len(feeds))

        self._in_flight = PublicationOrder(feeds=len(feeds))
        self._page_queue: list[tuple] = []
        pages_in_flight = 0
        while pending or self._page_queue:
            # Pages are fetched oldest first across all feeds, so they finish roughly in the
            # order PublicationOrder releases them to the store.
            while self._page_queue and pages_in_flight < self.max_pages_in_flight:
                _, _, _, fid, entry, link, page_url = heapq.heappop(self._page_queue)
                pending[self.threads.submit(self.fetcher.fetch, page_url, expect="html")] = ("page", fid, entry, link)
                pages_in_flight += 1
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                kind, *info = pending.pop(fut)
                if kind == "feed":
                    (fid,) = info
                    self._on_feed_fetched(runs[fid], fut, summary)
                    self._in_flight.feed_parsed()
                    self.progress("feed", 1)
                elif kind == "page":
                    pages_in_flight -= 1
                    fid, entry, link = info
                    nxt = self._on_page_fetched(runs[fid], entry, link, fut, summary)
                    if nxt is not None:
                        pending[nxt[0]] = nxt[1]
                elif kind == "extract":
                    fid, entry, link, result = info
                    self._on_extracted(runs[fid], entry, link, result, fut, summary)
        for ready_run, ready in self._in_flight.release(everything=True):
            self._save(ready_run, ready, summary)
        for run in runs.values():
            if run.parsed is not None and run.result is not None:
                self._finish_feed(run, summary)
        if self._attempts:
            with self.db.session() as s:
                self._write_attempts(s)
        return summary

    # -- feed stage --------------------------------------------------------------------------

    def _fetch_feed(self, url: str, etag: str | None, last_modified: str | None) -> FetchResult:
        return self.fetcher.fetch(url, etag=etag, last_modified=last_modified, expect="feed")

    def _on_feed_fetched(self, run: _FeedRun, fut: Future, summary: IngestSummary) -> None:
        """Parse the feed and queue the pages of entries not seen before."""
        try:
            result: FetchResult = fut.result()
        except FetchError as exc:
            self._feed_failed(run, exc, summary)
            return
        if result.not_modified:
            self._record(run.feed_id, "feed", run.url, result, "not_modified")
            self._feed_done(run.feed_id, result, changed=False)
            summary.feeds_not_modified += 1
            return
        try:
            parsed = parse_feed(result.content, url=result.final_url, headers=result.headers)
        except FeedParseError as exc:
            self._record(run.feed_id, "feed", run.url, result, "error", "parse", str(exc))
            self._feed_failed(run, exc, summary, result=result)
            return
        self._record(run.feed_id, "feed", run.url, result, "ok", None, parsed.bozo_error)
        run.result, run.parsed = result, parsed
        with self.db.session() as s:
            feed = s.get(Feed, run.feed_id)
            feed.title = parsed.title or feed.title
            feed.site_url = parsed.link or feed.site_url
            feed.bozo_error = parsed.bozo_error
            fetch_pages = feed.fetch_pages
        seen_links: set[str] = set()
        with self.db.session() as s:
            for entry in parsed.entries:
                summary.entries += 1
                link = safe_canonical(entry.link or "", result.final_url) if entry.link else None
                if link and (link in seen_links or known_article_id(s, link) is not None):
                    summary.entries_known += 1
                    continue
                if link:
                    seen_links.add(link)
                if link is None or not fetch_pages:
                    self._in_flight.started(entry)
                    self._store(run, entry, link, None, None, summary)
                    continue
                page_url = entry.link if entry.link.startswith("http") else link
                self._in_flight.started(entry)
                self._queued += 1
                heapq.heappush(self._page_queue, (entry.published or PublicationOrder._LAST, link, self._queued,
                                                  run.feed_id, entry, link, page_url))

    def _feed_failed(self, run: _FeedRun, exc: Exception, summary: IngestSummary, result: FetchResult | None = None) -> None:
        if result is None:
            self._record(run.feed_id, "feed", run.url, None, "error", getattr(exc, "kind", "error"), str(exc),
                         status=getattr(exc, "status", None))
        summary.feeds_failed += 1
        summary.failed_feeds.append(f"{run.url}: {exc}")
        with self.db.session() as s:
            self._write_attempts(s)
            feed = s.get(Feed, run.feed_id)
            now = utcnow()
            feed.consecutive_failures += 1
            feed.last_fetched_at = now
            feed.last_status = "error"
            feed.last_error = str(exc)[:2000]
            soft = bool(getattr(exc, "soft", False))
            feed.next_fetch_at = next_fetch_time(
                now, feed.interval_minutes, failures=feed.consecutive_failures, soft=soft,
                retry_after=getattr(exc, "retry_after", None), unchanged_streak=0,
            )
            feed.claimed_by = feed.claimed_until = None

    def _feed_done(self, feed_id: int, result: FetchResult, *, changed: bool) -> None:
        with self.db.session() as s:
            self._write_attempts(s)
            feed = s.get(Feed, feed_id)
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
            feed.next_fetch_at = next_fetch_time(
                now, feed.interval_minutes, failures=0, soft=False, retry_after=None,
                unchanged_streak=feed.unchanged_streak,
            )
            feed.claimed_by = feed.claimed_until = None

    def _finish_feed(self, run: _FeedRun, summary: IngestSummary) -> None:
        summary.feeds_ok += 1
        self._feed_done(run.feed_id, run.result, changed=run.new_articles > 0)

    # -- page stage --------------------------------------------------------------------------

    def _on_page_fetched(self, run: _FeedRun, entry: FeedEntry, link: str, fut: Future, summary: IngestSummary):
        try:
            result: FetchResult = fut.result()
        except FetchError as exc:
            self._record(run.feed_id, "page", entry.link or link, None, "error", exc.kind, str(exc), status=exc.status)
            summary.pages_failed += 1
            self._store(run, entry, link, None, None, summary)
            return None
        if self.extractor is not None:
            efut = self.extractor.submit(_extract_in_worker, result.content, result.final_url,
                                         entry.published is None, entry.title, self.clusterer.settings)
            return efut, ("extract", run.feed_id, entry, link, result)
        # One process: features are computed when the article is clustered (no gain in doing it here).
        try:
            page = extract_page(result.content, result.final_url, find_date=entry.published is None)
        except ExtractionError as exc:
            page = f"extraction: {exc}"
        self._finish_page(run, entry, link, result, (page, None), summary)
        return None

    def _on_extracted(self, run, entry, link, result, fut: Future, summary: IngestSummary) -> None:
        try:
            extracted = fut.result()
        except Exception as exc:  # a crashed worker process must not stop the pass
            extracted = (f"extraction: {exc!r}", None)
        self._finish_page(run, entry, link, result, extracted, summary)

    def _finish_page(self, run, entry, link, result: FetchResult, extracted, summary: IngestSummary) -> None:
        page, features = extracted
        if isinstance(page, str):
            self._record(run.feed_id, "page", result.url, result, "error", "extraction", page)
            summary.pages_failed += 1
            page = None
        else:
            self._record(run.feed_id, "page", result.url, result, "ok")
        self._store(run, entry, link, result, page, summary, features)

    # -- store stage -------------------------------------------------------------------------

    def _store(self, run: _FeedRun, entry: FeedEntry, link: str | None, result: FetchResult | None,
               page: ExtractedPage | None, summary: IngestSummary, features: Features | None = None) -> None:
        """Queue the entry's article; it is saved once no earlier-dated entry is still in flight."""
        self._in_flight.done(entry)
        cand = build_candidate(entry, link, result, page, run.feed_id, self.rules)
        if cand is not None:
            if features is not None and page is not None and cand.text is page.text:
                self.clusterer.prime(cand.title, cand.content_hash, features)
            if cand.text_source != "page":
                summary.fallbacks += 1
            self._in_flight.ready(cand.published_at, cand.canonical_url, (run, cand))
        for ready_run, ready in self._in_flight.release():
            self._save(ready_run, ready, summary)

    def _save(self, run: _FeedRun, cand: ArticleCandidate, summary: IngestSummary) -> None:
        with self.db.session() as s:
            self._write_attempts(s)
            outcome = save_article(s, cand, self.clusterer.assign)
        metrics.article_saved(outcome.status)
        if outcome.status == "new":
            summary.new_articles += 1
            run.new_articles += 1
        elif outcome.status == "updated":
            summary.updated_articles += 1
        else:
            summary.duplicates += 1

    def _record(self, feed_id, kind, url, result: FetchResult | None, outcome, error_kind=None, error=None, status=None):
        """Queue a fetch-attempt row; it is written with the next transaction (no commit of its own)."""
        metrics.fetch_recorded(kind, outcome, result.elapsed_ms if result is not None else None, error_kind)
        self._attempts.append(FetchAttempt(
            feed_id=feed_id, kind=kind, url=url[:2048], outcome=outcome, error_kind=error_kind,
            error=(error or None) and str(error)[:2000],
            http_status=result.status if result is not None else status,
            elapsed_ms=result.elapsed_ms if result is not None else None,
            bytes=len(result.content) if result is not None else None,
        ))

    def _write_attempts(self, session) -> None:
        if self._attempts:
            session.add_all(self._attempts)
            self._attempts = []


def build_candidate(entry: FeedEntry, link: str | None, result: FetchResult | None, page: ExtractedPage | None,
                    feed_id: int | None, rules) -> ArticleCandidate | None:
    """Merge what the feed entry and the page say into one candidate article (pure)."""
    feed_content = html_to_text(entry.content_html) if entry.content_html else ""
    feed_summary = html_to_text(entry.summary_html) if entry.summary_html else ""
    page_text = page.text if page is not None else ""
    if len(page_text) >= MIN_TEXT_CHARS or (page_text and len(page_text) >= max(len(feed_content), len(feed_summary))):
        text, text_source, html = page_text, "page", page_html(result.content, result.headers.get("content-type"))
    elif feed_content:
        text, text_source, html = feed_content, "feed-content", sanitize_html(entry.content_html)
    elif feed_summary:
        text, text_source, html = feed_summary, "feed-summary", sanitize_html(entry.summary_html)
    else:
        text, text_source, html = "", "title", None
    title = (entry.title or (page.title if page else "") or "").strip()
    if not title and not text:
        return None

    fetched_url = result.final_url if result is not None else (link or entry.link or "")
    canonical = None
    if page is not None and page.canonical_url:
        canonical = safe_canonical(page.canonical_url, fetched_url)
    canonical = canonical or safe_canonical(fetched_url) or link
    if canonical is None:
        # An entry without any usable link: identify it by feed and guid.
        key = entry.guid or content_hash(title + "\n" + text)
        canonical = f"urn:newsmon:feed:{feed_id}:{key}"
    published = entry.published or (page.published if page else None)
    aliases = [a for a in (link,) if a]
    return ArticleCandidate(
        canonical_url=canonical,
        url=fetched_url or canonical,
        title=title[:2000],
        text=text,
        html=html,
        summary=feed_summary[:5000] or None,
        text_source=text_source,
        content_hash=content_hash(text if text else title),
        source=source_of(canonical) if canonical.startswith("http") else source_of(fetched_url),
        aliases=aliases,
        feed_id=feed_id,
        guid=(entry.guid or None) and entry.guid[:2048],
        published_at=published,
        language=page.language if page else None,
        author=entry.author or (page.author if page else None),
        site_name=page.site_name if page else None,
        topics=tag_topics(title, text, rules),
    )
