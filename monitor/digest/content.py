"""What goes into one digest: the new articles matching a saved search, grouped by story.

"New" means stored in the window (previous digest's end, this digest's end]; the window is
measured on `Article.fetched_at` because a story reported today about last week still is news
to the reader. Matching is done by the search backend (the same query language and filters as
the search page), then narrowed to the window in the database, which also gives the story
facts (size, sources, headline).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.stages.sanitize import html_to_text
from monitor.storage.models import Article, OutboxEntry, SavedSearch, Story
from search.backend import SearchBackend
from search.query import SearchQuery

# Published dates lag the fetch time; look this far back in the index for candidates.
LOOKBACK = timedelta(days=7)
# A digest's window ends this far in the past so articles still being written are not missed.
SETTLE = timedelta(seconds=60)
MAX_SCAN = 5000          # matching articles read from the index per digest
MAX_STORIES = 40         # shown in one e-mail; the rest are counted and linked
SPARK_DAYS = 14


@dataclass
class DigestStory:
    story_id: int | None
    headline: str
    headline_article_id: int
    headline_source: str
    summary: str
    article_count: int        # articles in the whole story
    source_count: int
    new_count: int            # of them new in this digest's window and matching the search
    other_sources: list[str]
    newest: datetime
    url: str = ""             # set by the renderer from the public base URL


@dataclass
class DigestContent:
    search: SavedSearch
    window_start: datetime
    window_end: datetime
    stories: list[DigestStory]
    total_stories: int
    new_articles: int
    timeline: list[int] = field(default_factory=list)  # matching articles per day, oldest first
    timeline_days: list[date] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.stories


def window_end_for(s: Session, now: datetime) -> datetime:
    """Now minus the settle time, but never past an article the search index does not have yet."""
    end = now - SETTLE
    oldest_pending = s.scalar(select(func.min(OutboxEntry.created_at)))
    if oldest_pending is not None and oldest_pending < end:
        end = oldest_pending
    return end


def search_query(search: SavedSearch, **kw) -> SearchQuery:
    return SearchQuery(text=search.query, topics=list(search.topics), sources=list(search.sources),
                       languages=list(search.languages), **kw)


def collect(s: Session, backend: SearchBackend, search: SavedSearch, start: datetime, end: datetime) -> DigestContent:
    ids: list[int] = []
    offset = 0
    while len(ids) < MAX_SCAN:
        page = backend.search(search_query(search, since=start - LOOKBACK, sort="date", limit=1000, offset=offset))
        ids += [int(h.id) for h in page.hits if h.id.isdigit()]
        offset += len(page.hits)
        if not page.hits or offset >= page.total:
            break
    new_articles: list[Article] = []
    for chunk in range(0, len(ids), 500):
        new_articles += s.scalars(select(Article).where(
            Article.id.in_(ids[chunk:chunk + 500]), Article.fetched_at > start, Article.fetched_at <= end)).all()
    groups: dict[tuple[str, int], list[Article]] = defaultdict(list)
    for a in new_articles:
        groups[("s", a.story_id) if a.story_id else ("a", a.id)].append(a)
    stories = [_story(s, key, members) for key, members in groups.items()]
    stories.sort(key=lambda st: (-st.article_count, -st.newest.timestamp(), st.headline_article_id))
    timeline, days = _timeline(backend, search, end)
    return DigestContent(search, start, end, stories[:MAX_STORIES], len(stories), len(new_articles), timeline, days)


def _story(s: Session, key: tuple[str, int], members: list[Article]) -> DigestStory:
    newest = max((a.published_at or a.fetched_at) for a in members)
    story = s.get(Story, key[1]) if key[0] == "s" else None
    head = None
    if story is not None and story.headline_article_id:
        head = s.get(Article, story.headline_article_id)
    if head is None:
        head = min(members, key=lambda a: (a.duplicate_of is not None, a.published_at or a.fetched_at, a.id))
    if story is not None:
        sources = sorted(set(s.scalars(select(Article.source).where(Article.story_id == story.id).distinct())))
        count, source_count = story.article_count or len(members), story.source_count or len(sources)
    else:
        sources, count, source_count = [head.source], 1, 1
    summary = html_to_text(head.summary) if head.summary else (head.text or "")
    summary = " ".join(summary.split())
    if len(summary) > 280:
        summary = summary[:277].rsplit(" ", 1)[0] + " …"
    return DigestStory(
        story_id=story.id if story is not None else None,
        headline=(story.headline if story is not None and story.headline else head.title) or head.canonical_url,
        headline_article_id=head.id, headline_source=head.source, summary=summary,
        article_count=max(count, len(members)), source_count=max(source_count, 1),
        new_count=len(members), other_sources=[x for x in sources if x != head.source], newest=newest,
    )


def _timeline(backend: SearchBackend, search: SavedSearch, end: datetime) -> tuple[list[int], list[date]]:
    last = end.date()
    first = last - timedelta(days=SPARK_DAYS - 1)
    try:
        buckets = backend.timeline(search_query(search, since=first, until=last), "day")
    except Exception:  # a sparkline is decoration: never fail a digest over it
        return [], []
    by_day = {b.start: b.count for b in buckets}
    days = [first + timedelta(days=i) for i in range(SPARK_DAYS)]
    return [by_day.get(d, 0) for d in days], days
