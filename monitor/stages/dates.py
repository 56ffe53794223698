"""Parse a declared publication date (ISO 8601 / RFC 3339, or RFC 2822 as some feeds write it): newsmon's one date parser."""

from __future__ import annotations

import email.utils
from datetime import date, datetime, time, timedelta, timezone

__all__ = ["FUTURE_TOLERANCE", "EARLIEST_YEAR", "parse_datetime", "plausible"]

# Clocks and time zones disagree a little; beyond that a future date is a parsing accident.
FUTURE_TOLERANCE = timedelta(days=2)
# Before the web there were no news pages: an earlier year is a template default or epoch 0.
EARLIEST_YEAR = 1990


def parse_datetime(value: object, *, now: datetime | None = None) -> datetime | None:
    """`value` as an aware UTC datetime, or None when it is missing or not a date.

    Accepts what `datetime.fromisoformat` reads (any ISO 8601 date or date-time, with or without
    an offset, `Z`/`z`, basic or extended format), RFC 2822 dates, and a string that starts with an
    ISO day (``2025-02-10 at 9am`` is that day). A time without an offset is UTC; a bare day is
    midnight UTC. With `now`, implausible dates are refused (see `plausible`).
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    parsed = _iso(text) or _rfc2822(text)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    parsed = parsed.astimezone(timezone.utc)
    if now is not None and not plausible(parsed, now):
        return None
    return parsed


def plausible(when: datetime, now: datetime) -> bool:
    """False for dates more than FUTURE_TOLERANCE after `now` or before EARLIEST_YEAR."""
    return when.year >= EARLIEST_YEAR and when <= now + FUTURE_TOLERANCE


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.upper())  # ISO letters (T, Z, W) are upper case
    except ValueError:
        pass
    try:
        return datetime.combine(date.fromisoformat(text[:10]), time(0))
    except ValueError:
        return None


def _rfc2822(text: str) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
