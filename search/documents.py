"""The document the search layer indexes: one article, as plain data (no ORM, no monitor/ imports)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

__all__ = ["SearchDocument", "to_utc", "epoch_seconds", "epoch_day", "week_start_day", "day_from_epoch"]

_EPOCH = date(1970, 1, 1)
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,511}$")


@dataclass
class SearchDocument:
    """One indexed article. ``id`` is the article id (digits in practice; ``[A-Za-z0-9_-]`` accepted)."""

    id: str
    url: str
    title: str
    text: str
    source: str
    language: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    topics: list[str] = field(default_factory=list)
    story_id: str | None = None
    is_duplicate: bool = False
    duplicate_of: str | None = None

    def __post_init__(self) -> None:
        self.id = str(self.id)
        if not _ID_RE.match(self.id):
            raise ValueError(f"document id {self.id!r} must match [A-Za-z0-9_-]{{1,511}}")
        if self.published_at is not None:
            self.published_at = to_utc(self.published_at)
        if self.story_id is not None:
            self.story_id = str(self.story_id)
        if self.duplicate_of is not None:
            self.duplicate_of = str(self.duplicate_of)
        self.topics = sorted({str(t) for t in self.topics if t})

    @property
    def story_key(self) -> str:
        """Grouping key for story collapse: the story id, or the article itself when it has none."""
        return f"s-{self.story_id}" if self.story_id else f"a-{self.id}"


def to_utc(value: datetime) -> datetime:
    """Timezone-aware UTC datetime; naive datetimes are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def epoch_seconds(value: datetime) -> int:
    """Whole seconds since the Unix epoch (UTC)."""
    return int(to_utc(value).timestamp())


def epoch_day(value: datetime | date) -> int:
    """Days since 1970-01-01 of the UTC calendar day of ``value``."""
    if isinstance(value, datetime):
        value = to_utc(value).date()
    return (value - _EPOCH).days


def week_start_day(day: int) -> int:
    """The epoch day of the Monday starting the ISO week that contains epoch day ``day``."""
    return day - ((day + 3) % 7)  # 1970-01-01 was a Thursday


def day_from_epoch(day: int) -> date:
    return _EPOCH + timedelta(days=day)


def last_per_id(docs) -> list[SearchDocument]:
    """The batch with one document per id, the last one winning (an article updated twice in one drain)."""
    latest: dict[str, SearchDocument] = {}
    for d in docs:
        latest[d.id] = d
    return list(latest.values())
