"""Timeline charts: buckets per day, week or month, one series per topic, laid out as an SVG bar chart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

MAX_DAY_BUCKETS = 120
MAX_WEEK_BUCKETS = 160
WIDTH, HEIGHT = 880, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 34
MAX_BAR = 56
SERIES_CLASSES = ("s1", "s2", "s3", "s4", "s5")


@dataclass
class Bucket:
    start: date
    end: date        # inclusive last day
    count: int
    by_series: list[int] = field(default_factory=list)


@dataclass
class Bar:
    x: float
    y: float
    w: float
    h: float
    label: str
    count: int
    href: str


@dataclass
class Line:
    name: str
    css: str
    points: str


@dataclass
class Tick:
    x: float
    y: float
    label: str


@dataclass
class Chart:
    """Everything the template needs to draw the chart and the table under it."""

    interval: str
    buckets: list[Bucket]
    series: list[str]
    bars: list[Bar]
    lines: list[Line]
    xticks: list[Tick]
    yticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    total: int = 0
    peak: int = 0

    @property
    def empty(self) -> bool:
        return not self.buckets


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def choose_interval(first: date, last: date) -> str:
    days = (last - first).days + 1
    if days <= MAX_DAY_BUCKETS:
        return "day"
    if days <= MAX_WEEK_BUCKETS * 7:
        return "week"
    return "month"


def _bucket_index(interval: str, origin: date):
    """A function from a day to its bucket number counted from the bucket holding `origin`."""
    if interval == "day":
        return lambda d: (d - origin).days
    if interval == "week":
        monday = origin - timedelta(days=origin.weekday())
        return lambda d: (d - monday).days // 7
    return lambda d: (d.year - origin.year) * 12 + d.month - origin.month


def bucket_ranges(first: date, last: date, interval: str) -> list[tuple[date, date]]:
    """Consecutive (start, inclusive end) buckets covering first..last."""
    out: list[tuple[date, date]] = []
    if interval == "day":
        start, step = first, lambda d: d + timedelta(days=1)
    elif interval == "week":
        start, step = first - timedelta(days=first.weekday()), lambda d: d + timedelta(days=7)
    else:
        start, step = _month_start(first), _next_month
    while start <= last:
        nxt = step(start)
        out.append((start, nxt - timedelta(days=1)))
        start = nxt
    return out


def regroup(days: dict[date, int], first: date, last: date, interval: str) -> list[tuple[date, date, int]]:
    """Day (or week-start) counts summed into consecutive buckets covering first..last (empty ones included)."""
    ranges = bucket_ranges(first, last, interval)
    counts = [0] * len(ranges)
    index = _bucket_index(interval, first)
    for d, c in days.items():
        if c:
            i = index(d)
            if 0 <= i < len(counts):
                counts[i] += c
    return [(s, e, c) for (s, e), c in zip(ranges, counts)]


def _nice_max(n: int) -> int:
    if n <= 5:
        return max(n, 1)
    mag = 10 ** (len(str(n)) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if n <= m * mag:
            return int(m * mag)
    return n


def _label(start: date, end: date, interval: str) -> str:
    if interval == "day":
        return start.isoformat()
    if interval == "week":
        return f"week of {start.isoformat()}"
    return start.strftime("%B %Y")


def build_chart(total: dict[date, int], series: dict[str, dict[date, int]], *,
                since: date | None, until: date | None, href: Callable[[date, date], str]) -> Chart:
    """Lay out the bars (all matches) and one line per series over the range of the data."""
    known = [d for d, c in total.items() if c]
    if not known and not (since and until):
        return Chart("day", [], list(series), [], [], [], [])
    first = since or min(known)
    last = until or max(known)
    if since and not until and known:
        last = max(max(known), since)
    if until and not since and known:
        first = min(min(known), until)
    interval = choose_interval(first, last)
    grouped = regroup(total, first, last, interval)
    per_series = {name: regroup(days, first, last, interval) for name, days in series.items()}
    buckets = [Bucket(s, e, c, [per_series[n][i][2] for n in series]) for i, (s, e, c) in enumerate(grouped)]
    peak = max((b.count for b in buckets), default=0)
    ymax = _nice_max(peak)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(buckets)
    slot = plot_w / max(n, 1)
    gap = min(2.0, slot * 0.2)
    bars = []
    for i, b in enumerate(buckets):
        h = plot_h * b.count / ymax if ymax else 0
        w = min(max(slot - gap, 1), MAX_BAR)
        bars.append(Bar(x=round(LEFT + i * slot + (slot - w) / 2, 2), y=round(TOP + plot_h - h, 2),
                        w=round(w, 2), h=round(h, 2), label=_label(b.start, b.end, interval),
                        count=b.count, href=href(b.start, b.end)))
    lines = []
    for k, name in enumerate(series):
        pts = []
        for i, b in enumerate(buckets):
            v = b.by_series[k]
            pts.append(f"{LEFT + (i + 0.5) * slot:.1f},{TOP + plot_h - (plot_h * v / ymax if ymax else 0):.1f}")
        lines.append(Line(name, SERIES_CLASSES[k % len(SERIES_CLASSES)], " ".join(pts)))
    steps = list(range(ymax + 1)) if ymax <= 4 else [0, ymax // 2, ymax] if ymax % 2 == 0 else [0, ymax]
    yticks = [Tick(LEFT - 6, round(TOP + plot_h - plot_h * v / ymax, 1), f"{v:,}") for v in steps] if ymax else []
    every = max(1, round(n / 8))
    xticks = []
    for i in range(0, n, every):
        b = buckets[i]
        text = b.start.strftime("%b %Y") if interval == "month" else b.start.strftime("%d %b %Y" if i == 0 else "%d %b")
        xticks.append(Tick(round(LEFT + (i + 0.5) * slot, 1), HEIGHT - BOTTOM + 16, text))
    return Chart(interval, buckets, list(series), bars, lines, xticks, yticks,
                 total=sum(b.count for b in buckets), peak=peak)
