"""Checks on everything a subscriber or operator types: address, time zone, hour, name, query.

Names and queries end up in e-mail headers (the subject), so control characters, CR and LF
are refused outright rather than stripped: a silently altered subject would be a surprise,
and header injection must be impossible whatever the mail library does.
"""

from __future__ import annotations

import re
import unicodedata
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from monitor.digest.errors import InvalidInput

MAX_NAME = 200
MAX_QUERY = 1000
_TZ_RE = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*")


def _no_controls(value: str, what: str) -> None:
    for ch in value:
        if ch in "\r\n" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise InvalidInput(f"{what} must be one line without control characters (found {ch!r})")


def email_address(value: str) -> str:
    """The normalised address, or InvalidInput saying what is wrong with it."""
    value = (value or "").strip()
    if not value:
        raise InvalidInput("e-mail address is empty")
    _no_controls(value, "e-mail address")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"{value!r} is not a valid e-mail address: {exc}") from None


def time_zone(value: str) -> str:
    value = (value or "").strip()
    # zoneinfo also reads files: refuse paths and anything that is not a zone name first.
    if not _TZ_RE.fullmatch(value) or ".." in value:
        raise InvalidInput(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin or UTC")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"unknown time zone {value!r}: use an IANA name such as Europe/Berlin or UTC") from None
    return value


def send_hour(value: int | str) -> int:
    try:
        hour = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"send hour must be a whole number from 0 to 23, got {value!r}") from None
    if not 0 <= hour <= 23:
        raise InvalidInput(f"send hour must be from 0 to 23, got {hour}")
    return hour


def search_name(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput("saved search name is empty")
    _no_controls(value, "saved search name")
    if len(value) > MAX_NAME:
        raise InvalidInput(f"saved search name is longer than {MAX_NAME} characters")
    return value


def query_text(value: str) -> str:
    """A query that parses with the search layer's parser (empty means: everything)."""
    from search.query import QuerySyntaxError, parse_query

    value = (value or "").strip()
    _no_controls(value, "query")
    if len(value) > MAX_QUERY:
        raise InvalidInput(f"query is longer than {MAX_QUERY} characters")
    try:
        parse_query(value)
    except QuerySyntaxError as exc:
        raise InvalidInput(f"query error: {exc}") from None
    return value


def filter_values(values, what: str) -> list[str]:
    out = []
    for v in values or []:
        v = str(v).strip()
        if not v:
            continue
        _no_controls(v, what)
        if len(v) > 300:
            raise InvalidInput(f"{what} {v[:40]!r}… is too long")
        out.append(v)
    return sorted(set(out))
