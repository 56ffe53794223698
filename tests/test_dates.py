"""The one date parser: every form feeds and pages declare, and the plausibility rules."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from monitor.stages.dates import parse_datetime

UTC = timezone.utc
NOW = datetime(2025, 2, 12, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("text, expected", [
    ("2025-02-10T14:05:00+01:00", datetime(2025, 2, 10, 13, 5, tzinfo=UTC)),
    ("2025-02-10T14:05:00Z", datetime(2025, 2, 10, 14, 5, tzinfo=UTC)),
    ("2025-02-10t14:05:00z", datetime(2025, 2, 10, 14, 5, tzinfo=UTC)),           # RFC 3339 allows lower case
    ("2025-02-10T14:05:00.123456789-05:00", datetime(2025, 2, 10, 19, 5, 0, 123456, tzinfo=UTC)),
    ("2025-02-10T14:05:00+0100", datetime(2025, 2, 10, 13, 5, tzinfo=UTC)),
    ("20250210T140500Z", datetime(2025, 2, 10, 14, 5, tzinfo=UTC)),                # basic format
    ("2025-02-10 14:05", datetime(2025, 2, 10, 14, 5, tzinfo=UTC)),                # naive means UTC
    ("2025-02-10", datetime(2025, 2, 10, tzinfo=UTC)),                             # a day is midnight UTC
    ("2025-02-10 at 9am", datetime(2025, 2, 10, tzinfo=UTC)),                      # a leading day is kept
    ("Mon, 10 Feb 2025 14:05:00 +0100", datetime(2025, 2, 10, 13, 5, tzinfo=UTC)),  # RFC 2822 in a JSON feed
    ("Mon, 10 Feb 2025 14:05:00 GMT", datetime(2025, 2, 10, 14, 5, tzinfo=UTC)),
    ("  2025-02-10T14:05:00Z \n", datetime(2025, 2, 10, 14, 5, tzinfo=UTC)),
])
def test_accepted_forms(text, expected):
    got = parse_datetime(text, now=NOW)
    assert got == expected and got.tzinfo == UTC


@pytest.mark.parametrize("value", [None, "", "   ", "yesterday", "2025-13-01", "2025-02-30T10:00:00Z", 20250210,
                                   "10/02/2025", "T14:05"])
def test_not_a_date_is_none(value):
    assert parse_datetime(value, now=NOW) is None


def test_far_future_and_prehistoric_dates_are_refused_only_with_now():
    assert parse_datetime("2025-02-14T07:59:00Z", now=NOW) is not None     # within two days
    assert parse_datetime("2025-02-14T08:01:00Z", now=NOW) is None
    assert parse_datetime("2999-01-01T00:00:00Z", now=NOW) is None
    assert parse_datetime("1970-01-01T00:00:00Z", now=NOW) is None         # epoch 0 from a broken CMS
    # Offline files (newsmon cluster) are taken as they are: no clock to compare with.
    assert parse_datetime("2999-01-01T00:00:00Z") == datetime(2999, 1, 1, tzinfo=UTC)
