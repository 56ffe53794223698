"""The fetch policy built from the environment settings (kept apart so light commands need no pipeline)."""

from __future__ import annotations

from monitor.config import Settings
from monitor.net.fetch import FetchPolicy


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        total_timeout=settings.total_timeout,
        max_bytes=settings.max_bytes,
        max_redirects=settings.max_redirects,
        user_agent=settings.user_agent,
        allow_hosts=settings.allow_hosts,
        min_host_interval=settings.min_host_interval,
        per_host_concurrency=settings.host_concurrency,
    )
