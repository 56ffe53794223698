"""PublicationOrder: releases articles to the store oldest first, waiting at most a bounded time.

Fetches finish in any order, but clustering is incremental: the result must not depend on
which page happened to arrive first. Feeds are claimed in cohorts (one claim batch each). An
article is stored once

- every feed of its cohort and of all earlier cohorts has been parsed (until then the dates of
  their entries are unknown), and
- no earlier-dated entry is still in flight (its page being fetched or extracted);

ties are broken by URL, undated entries go last. The same feeds thus give the same stories on
any machine, under any load — as long as nothing is slow. A feed that has not answered within
`hold` seconds of its claim, or an entry whose page is still in flight `hold` seconds after it
was queued, stops holding the others: a hanging site delays its neighbours by at most `hold`.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Generic, TypeVar

T = TypeVar("T")

LAST = datetime.max.replace(tzinfo=timezone.utc)


@dataclass
class _Cohort(Generic[T]):
    deadline: float
    unparsed: set[Hashable] = field(default_factory=set)
    ready: list[tuple[datetime, str, int, T]] = field(default_factory=list)  # a heap


class PublicationOrder(Generic[T]):
    """See the module docstring. Not thread-safe: one loop owns it."""

    def __init__(self, hold: float = 15.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold = hold
        self._clock = clock
        self._cohorts: dict[int, _Cohort[T]] = {}
        self._next_cohort = itertools.count(1)
        self._seq = itertools.count()
        self._pending: dict[Hashable, datetime] = {}
        self._horizon: list[tuple[datetime, int, Hashable, float]] = []  # heap over pending entries

    # -- feeds -------------------------------------------------------------------------------

    def open_cohort(self, feeds: list[Hashable]) -> int:
        """A new claim batch whose feeds are not parsed yet; returns its cohort id."""
        cid = next(self._next_cohort)
        self._cohorts[cid] = _Cohort(deadline=self._clock() + self.hold, unparsed=set(feeds))
        return cid

    def feed_parsed(self, cohort: int, feed: Hashable) -> None:
        """The feed's entries are known (or it failed): it no longer holds its cohort."""
        c = self._cohorts.get(cohort)
        if c is not None:
            c.unparsed.discard(feed)

    # -- entries -----------------------------------------------------------------------------

    def started(self, token: Hashable, published: datetime | None) -> None:
        """An entry whose page is in flight: it holds later-dated articles for up to `hold` seconds."""
        when = published or LAST
        self._pending[token] = when
        heapq.heappush(self._horizon, (when, next(self._seq), token, self._clock() + self.hold))

    def done(self, token: Hashable) -> None:
        self._pending.pop(token, None)

    def ready(self, cohort: int, published: datetime | None, key: str, payload: T) -> None:
        """An article that may be stored once nothing earlier can still come."""
        c = self._cohorts.get(cohort)
        if c is None:  # its cohort was already fully released (cannot happen in the pipeline)
            c = self._cohorts[cohort] = _Cohort(deadline=self._clock())
        heapq.heappush(c.ready, (published or LAST, key, next(self._seq), payload))

    @property
    def waiting(self) -> int:
        return sum(len(c.ready) for c in self._cohorts.values())

    # -- release -----------------------------------------------------------------------------

    def _open_cohorts(self, now: float) -> list[_Cohort[T]]:
        """Cohorts whose articles may go: every feed of it and of earlier cohorts parsed or timed out."""
        out = []
        for cid in sorted(self._cohorts):
            c = self._cohorts[cid]
            if c.unparsed and now < c.deadline:
                break
            out.append(c)
        return out

    def _horizon_date(self, now: float) -> datetime | None:
        while self._horizon:
            when, _, token, deadline = self._horizon[0]
            if token in self._pending and self._pending[token] == when and now < deadline:
                return when
            heapq.heappop(self._horizon)  # done, or held long enough
        return None

    def release(self, *, everything: bool = False) -> Iterator[T]:
        """Yield the articles that may be stored now, oldest first."""
        while True:
            now = self._clock()
            cohorts = list(self._cohorts.values()) if everything else self._open_cohorts(now)
            horizon = None if everything else self._horizon_date(now)
            best: _Cohort[T] | None = None
            for c in cohorts:
                if c.ready and (best is None or c.ready[0][:3] < best.ready[0][:3]):
                    best = c
            if best is None or (horizon is not None and not best.ready[0][0] < horizon):
                break
            yield heapq.heappop(best.ready)[3]
        self._forget_finished()

    def _forget_finished(self) -> None:
        now = self._clock()
        for cid in sorted(self._cohorts):
            c = self._cohorts[cid]
            if c.ready or (c.unparsed and now < c.deadline):
                break
            del self._cohorts[cid]
