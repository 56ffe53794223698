"""Runtime settings from the environment (NEWSMON_*, DATABASE_URL, SEARCH_URL), validated into `Settings`."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs

from monitor.config.errors import ConfigError
from monitor.net.policy import DEFAULT_USER_AGENT, FetchPolicy  # noqa: F401 - re-exported by monitor.config

# Fetch defaults live with the fetcher (`FetchPolicy`); settings only read overrides.
_FETCH = FetchPolicy()


def default_feeds_path() -> Path:
    """The packaged default feeds.yaml (monitor/data/feeds.yaml)."""
    return Path(str(resources.files("monitor") / "data" / "feeds.yaml"))


# --------------------------------------------------------------------------------------------
# Settings from the environment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    search_url: str
    search_api_key: str | None
    allow_hosts: frozenset[str]
    feeds_path: Path
    user_agent: str
    max_bytes: int
    connect_timeout: float
    read_timeout: float
    total_timeout: float
    max_redirects: int
    workers: int
    min_host_interval: float = _FETCH.min_host_interval
    host_concurrency: int = _FETCH.per_host_concurrency
    feed_fetches: int = 32
    page_fetches: int = 16
    hold_seconds: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> "Settings":
        """Read settings from `env` (default `os.environ`); `cwd` decides where ./feeds.yaml is looked for."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            # An exported-but-empty variable means "not set", as in most shells' ${VAR:-default}.
            return value.strip() if value is not None and value.strip() else None

        home = Path(get("NEWSMON_HOME") or platformdirs.user_data_dir("newsmon")).expanduser()
        database_url = get("DATABASE_URL") or f"sqlite:///{home}/newsmon.sqlite"
        search_url = get("SEARCH_URL") or f"sqlite:///{home}/search.sqlite"
        for name, value in (("DATABASE_URL", database_url), ("SEARCH_URL", search_url)):
            if "://" not in value:
                raise ConfigError(f"{name}: expected a URL such as sqlite:///path or postgresql://..., got {value!r}")

        hosts_raw = get("NEWSMON_ALLOW_HOSTS") or ""
        allow_hosts = frozenset(h.strip().lower() for h in hosts_raw.split(",") if h.strip())
        for host in allow_hosts:
            if not re.fullmatch(r"[a-z0-9.\-:\[\]]+", host):
                raise ConfigError(f"NEWSMON_ALLOW_HOSTS: {host!r} is not a host name or IP address")

        feeds_raw = get("NEWSMON_FEEDS")
        if feeds_raw:
            feeds_path = Path(feeds_raw).expanduser()
        else:
            local = (cwd or Path.cwd()) / "feeds.yaml"
            feeds_path = local if local.is_file() else default_feeds_path()

        return cls(
            home=home,
            database_url=database_url,
            search_url=search_url,
            search_api_key=get("SEARCH_API_KEY") or get("MEILI_MASTER_KEY"),
            allow_hosts=allow_hosts,
            feeds_path=feeds_path,
            user_agent=get("NEWSMON_USER_AGENT") or _FETCH.user_agent,
            max_bytes=_int(get, "NEWSMON_MAX_BYTES", _FETCH.max_bytes, minimum=1024),
            connect_timeout=_float(get, "NEWSMON_CONNECT_TIMEOUT", _FETCH.connect_timeout),
            read_timeout=_float(get, "NEWSMON_READ_TIMEOUT", _FETCH.read_timeout),
            total_timeout=_float(get, "NEWSMON_TOTAL_TIMEOUT", _FETCH.total_timeout),
            max_redirects=_int(get, "NEWSMON_MAX_REDIRECTS", _FETCH.max_redirects, minimum=0),
            workers=_int(get, "NEWSMON_WORKERS", 4, minimum=1),
            min_host_interval=_float(get, "NEWSMON_HOST_INTERVAL", _FETCH.min_host_interval, allow_zero=True),
            host_concurrency=_int(get, "NEWSMON_HOST_CONCURRENCY", _FETCH.per_host_concurrency, minimum=1),
            feed_fetches=_int(get, "NEWSMON_FEED_FETCHES", 32, minimum=1),
            page_fetches=_int(get, "NEWSMON_PAGE_FETCHES", 16, minimum=1),
            hold_seconds=_float(get, "NEWSMON_HOLD_SECONDS", 15.0, allow_zero=True),
        )


def _int(get, name: str, default: int, *, minimum: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _float(get, name: str, default: float, *, allow_zero: bool = False) -> float:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {raw!r}") from None
    if not ((0 <= value if allow_zero else 0 < value) and value < 3600):  # also rejects nan and inf
        raise ConfigError(f"{name}: must be between 0 and 3600 seconds, got {raw!r}")
    return value
