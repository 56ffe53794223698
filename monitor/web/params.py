"""Search parameters from a query string: validated into `SearchParams`, with one clear error each."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from urllib.parse import urlencode

from search.query import MAX_QUERY_CHARS, SearchQuery, parse_query

from monitor.errors import NewsmonError

_LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")
MAX_FILTER_VALUES = 20
MAX_OFFSET = 1_000_000
MIN_YEAR, MAX_YEAR = 1900, 2999


class ParamError(NewsmonError, ValueError):
    """A request parameter is malformed or out of range (answered with 400 and this message)."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


@dataclass(frozen=True)
class SearchParams:
    """Everything a search page or API call asks for; the URL holds all of it."""

    q: str = ""
    topics: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    sort: str = "relevance"
    limit: int = 20
    offset: int = 0
    collapse: bool = True
    sort_given: bool = field(default=False, compare=False)

    def query(self, **changes) -> SearchQuery:
        p = replace(self, **changes) if changes else self
        return SearchQuery(text=p.q, topics=list(p.topics), sources=list(p.sources), languages=list(p.languages),
                           since=p.since, until=p.until, sort=p.sort, collapse_stories=p.collapse,
                           limit=p.limit, offset=p.offset)

    def pairs(self, *, paging: bool = True) -> list[tuple[str, str]]:
        """The query-string pairs of these parameters (defaults left out so URLs stay short)."""
        out: list[tuple[str, str]] = []
        if self.q:
            out.append(("q", self.q))
        out += [("topic", t) for t in self.topics]
        out += [("source", s) for s in self.sources]
        out += [("language", x) for x in self.languages]
        if self.since:
            out.append(("since", self.since.isoformat()))
        if self.until:
            out.append(("until", self.until.isoformat()))
        if self.sort_given:
            out.append(("sort", self.sort))
        if not self.collapse:
            out.append(("collapse", "0"))
        if paging:
            if self.limit != 20:
                out.append(("limit", str(self.limit)))
            if self.offset:
                out.append(("offset", str(self.offset)))
        return out

    def url(self, path: str = "/", *, paging: bool = True, **changes) -> str:
        p = replace(self, **changes) if changes else self
        qs = urlencode(p.pairs(paging=paging))
        return f"{path}?{qs}" if qs else path

    def with_filter(self, kind: str, value: str) -> "SearchParams":
        cur = getattr(self, kind)
        return replace(self, **{kind: cur if value in cur else cur + (value,)}, offset=0)

    def without_filter(self, kind: str, value: str) -> "SearchParams":
        return replace(self, **{kind: tuple(v for v in getattr(self, kind) if v != value)}, offset=0)

    def with_sort(self, sort: str) -> "SearchParams":
        return replace(self, sort=sort, sort_given=True, offset=0)


def _one(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = args.get(name) or []
    value = values[-1].strip() if values else ""
    return value or None


def int_param(args, name: str, default: int, lo: int, hi: int) -> int:
    raw = _one(args, name)
    if raw is None:
        return default
    if not re.fullmatch(r"\d{1,9}", raw):
        raise ParamError(name, f"expected a whole number between {lo} and {hi}, got {raw[:40]!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise ParamError(name, f"must be between {lo} and {hi}, got {value}")
    return value


def day_param(args, name: str) -> date | None:
    raw = _one(args, name)
    if raw is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise ParamError(name, f"expected a date like 2025-02-10, got {raw[:40]!r}") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ParamError(name, f"the year must be between {MIN_YEAR} and {MAX_YEAR}, got {day.year}")
    return day


def _many(args, name: str) -> list[str]:
    values = [v.strip() for v in args.get(name) or [] if v.strip()]
    if len(values) > MAX_FILTER_VALUES:
        raise ParamError(name, f"at most {MAX_FILTER_VALUES} values")
    for v in values:
        if len(v) > 300:
            raise ParamError(name, "a value is longer than 300 characters")
    return list(dict.fromkeys(values))


def parse_params(args: Mapping[str, Sequence[str]], *, known_topics: Iterable[str], max_limit: int = 100,
                 default_limit: int = 20, default_collapse: bool = True) -> SearchParams:
    """Validate a query string (name -> all its values). Raises ParamError, or QuerySyntaxError for `q`."""
    q = _one(args, "q") or ""
    if len(q) > MAX_QUERY_CHARS:
        raise ParamError("q", f"the query is {len(q)} characters long; the limit is {MAX_QUERY_CHARS}")
    parse_query(q)  # QuerySyntaxError carries the position; the caller shows it where it was typed
    known = set(known_topics)
    topics = _many(args, "topic")
    for t in topics:
        if known and t not in known:
            raise ParamError("topic", f"unknown topic {t[:60]!r}; known topics: {', '.join(sorted(known))}")
    languages = [x.lower() for x in _many(args, "language")]
    for x in languages:
        if not _LANG.match(x):
            raise ParamError("language", f"expected a language code such as en or pt-br, got {x[:40]!r}")
    since, until = day_param(args, "since"), day_param(args, "until")
    if since and until and since > until:
        raise ParamError("since", f"{since} is after until ({until})")
    sort_raw = _one(args, "sort")
    if sort_raw is not None and sort_raw not in ("relevance", "date"):
        raise ParamError("sort", f"expected relevance or date, got {sort_raw[:40]!r}")
    sort = sort_raw or ("relevance" if q else "date")
    collapse_raw = _one(args, "collapse")
    if collapse_raw is None:
        collapse = default_collapse
    elif collapse_raw.lower() in ("1", "true", "yes", "on"):
        collapse = True
    elif collapse_raw.lower() in ("0", "false", "no", "off"):
        collapse = False
    else:
        raise ParamError("collapse", f"expected 1 or 0, got {collapse_raw[:40]!r}")
    return SearchParams(
        q=q, topics=tuple(topics), sources=tuple(_many(args, "source")), languages=tuple(languages),
        since=since, until=until, sort=sort, collapse=collapse, sort_given=sort_raw is not None,
        limit=int_param(args, "limit", default_limit, 1, max_limit), offset=int_param(args, "offset", 0, 0, MAX_OFFSET),
    )


def multi_dict(query_params) -> dict[str, list[str]]:
    """Starlette's QueryParams as name -> every value."""
    out: dict[str, list[str]] = {}
    for k, v in query_params.multi_items():
        out.setdefault(k, []).append(v)
    return out
