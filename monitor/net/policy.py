"""The fetch limits and manners (`FetchPolicy`): the one place their defaults are defined."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_USER_AGENT = "newsmon/0.1 (+https://github.com/newsmon/newsmon; media monitoring for research)"


@dataclass(frozen=True)
class FetchPolicy:
    """Limits and manners for one Fetcher. Timeouts are seconds.

    Settings (`NEWSMON_*` variables) default to these values, so a Fetcher built without
    settings behaves like one built from an empty environment.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_bytes: int = 10 * 1024 * 1024  # cap on the decompressed body (and compressed wire bytes)
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    allow_hosts: frozenset[str] = frozenset()
    per_host_concurrency: int = 2
    min_host_interval: float = 0.5  # seconds between request starts to one host
    max_retry_after: float = 3600.0
