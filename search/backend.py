"""The backend contract: result types, errors and the SearchBackend protocol both backends implement."""
from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol, runtime_checkable

from .documents import SearchDocument, day_from_epoch, epoch_day, week_start_day
from .query import SearchQuery, time_bounds

__all__ = [
    "Hit", "SearchResults", "TimelineBucket", "SearchBackend", "SearchBackendError", "BackendUnavailable",
    "FACET_FIELDS", "MARK_OPEN", "MARK_CLOSE", "render_snippet", "plain_snippet", "fill_timeline",
]

FACET_FIELDS = ("source", "topics", "language")

# Private-use code points the engines put around matches; the text is HTML-escaped first and only
# then are these turned into <mark> tags, so nothing from an article can inject markup.
MARK_OPEN = "\ue000"
MARK_CLOSE = "\ue001"
_MAX_FILL = 366 * 30  # buckets; beyond that only non-empty ones are returned


@dataclass
class Hit:
    id: str
    title: str
    url: str
    source: str
    published_at: datetime | None
    topics: list[str]
    snippet: str                 # HTML: escaped text with <mark>…</mark> around matches
    story_id: str | None
    story_size: int | None = None  # collapse_stories: matching articles in this story
    score: float | None = None     # higher is better; None for date-sorted/browse results
    language: str | None = None
    is_duplicate: bool = False
    title_html: str | None = None  # escaped title with <mark>s


@dataclass
class SearchResults:
    total: int                   # exact: matching articles, or matching stories when collapsed
    hits: list[Hit]
    offset: int
    limit: int


@dataclass
class TimelineBucket:
    start: date                  # the UTC day, or the Monday of the ISO week
    count: int


class SearchBackendError(Exception):
    """The search backend failed (misconfigured index, failed task, unexpected response)."""


class BackendUnavailable(SearchBackendError):
    """The backend cannot be reached right now; retry later (the outbox keeps the work)."""


@runtime_checkable
class SearchBackend(Protocol):
    def setup(self) -> None: ...
    def upsert(self, docs: Sequence[SearchDocument]) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def search(self, q: SearchQuery) -> SearchResults: ...
    def timeline(self, q: SearchQuery, interval: Literal["day", "week"] = "day") -> list[TimelineBucket]: ...
    def facets(self, q: SearchQuery, fields: Sequence[str] = FACET_FIELDS,
               limit: int = 10) -> dict[str, list[tuple[str, int]]]: ...
    def count(self) -> int: ...
    def reindex(self, docs: Iterable[SearchDocument], *,
                progress: Callable[[int], None] | None = None) -> int: ...
    def health(self) -> bool: ...
    def close(self) -> None: ...


def render_snippet(marked: str) -> str:
    """Escape engine output (matches wrapped in MARK_OPEN/MARK_CLOSE) into safe HTML with <mark>."""
    return html.escape(marked, quote=True).replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>")


def plain_snippet(text: str, words: int = 30) -> str:
    """Escaped leading words of a text, for hits without a text query."""
    parts = strip_marks(text).split()
    out = " ".join(parts[:words])
    return html.escape(out + (" …" if len(parts) > words else ""), quote=True)


def strip_marks(text: str) -> str:
    return text.replace(MARK_OPEN, "").replace(MARK_CLOSE, "")


def validate_facet_fields(fields: Sequence[str]) -> None:
    for f in fields:
        if f not in FACET_FIELDS:
            raise ValueError(f"unknown facet field {f!r}; choose from {', '.join(FACET_FIELDS)}")


def fill_timeline(counts: dict[date, int], q: SearchQuery, interval: str) -> list[TimelineBucket]:
    """Buckets oldest first with empty ones as 0, from ``since`` (or the first bucket) to ``until``
    (or the last) — the same shape the embedded backend returns."""
    lo, hi = time_bounds(q)
    days = {epoch_day(d): c for d, c in counts.items() if c}
    step = 1 if interval == "day" else 7
    norm = (lambda d: d) if interval == "day" else week_start_day
    first = min(days) if days else None
    last = max(days) if days else None
    if lo is not None:
        first = norm(lo // 86400)
    if hi is not None:
        last = norm((hi - 1) // 86400)
    if first is None or last is None or last < first:
        return []
    if (last - first) // step > _MAX_FILL:
        return [TimelineBucket(day_from_epoch(k), c) for k, c in sorted(days.items())]
    return [TimelineBucket(day_from_epoch(k), days.get(k, 0)) for k in range(first, last + 1, step)]
