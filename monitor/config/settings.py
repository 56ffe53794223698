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
    # Digest e-mail and links (monitor/digest/): NEWSMON_SMTP_URL, NEWSMON_MAIL_FROM, NEWSMON_BASE_URL, NEWSMON_SECRET.
    smtp_url: str | None = None
    mail_from: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    secret: str | None = None
    # Web UI (monitor/web): every page and API call behind a login (NEWSMON_REQUIRE_LOGIN).
    require_login: bool = False
    # ops: retention, outbox, observability
    keep_html_days: int = 30
    keep_attempts_days: int = 30
    outbox_max_attempts: int = 5
    stale_pass_seconds: int = 900
    host_concurrency: int = _FETCH.per_host_concurrency
    feed_fetches: int = 32
    page_fetches: int = 16
    hold_seconds: float = 15.0
    extract_timeout: float = 60.0  # seconds one page may take in an extraction process (workers > 1)

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
        search_url = get("SEARCH_URL") or f"tantivy:///{home}/search-index"
        for name, value in (("DATABASE_URL", database_url), ("SEARCH_URL", search_url)):
            if "://" not in value:
                raise ConfigError(f"{name}: expected a URL such as sqlite:///path or postgresql://..., got {value!r}")

        _check_search_url(search_url)

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
            workers=_int(get, "NEWSMON_WORKERS", 4, minimum=1, maximum=64),
            min_host_interval=_float(get, "NEWSMON_HOST_INTERVAL", _FETCH.min_host_interval, allow_zero=True),
            smtp_url=get("NEWSMON_SMTP_URL"),
            mail_from=get("NEWSMON_MAIL_FROM"),
            base_url=_base_url(get("NEWSMON_BASE_URL")),
            secret=get("NEWSMON_SECRET"),
            require_login=_bool(get, "NEWSMON_REQUIRE_LOGIN", False),
            keep_html_days=_int(get, "NEWSMON_KEEP_HTML_DAYS", 30, minimum=0, maximum=36500),
            keep_attempts_days=_int(get, "NEWSMON_KEEP_ATTEMPTS_DAYS", 30, minimum=1, maximum=36500),
            outbox_max_attempts=_int(get, "NEWSMON_OUTBOX_MAX_ATTEMPTS", 5, minimum=1, maximum=1000),
            stale_pass_seconds=_int(get, "NEWSMON_STALE_PASS_SECONDS", 900, minimum=10, maximum=7 * 86400),
            host_concurrency=_int(get, "NEWSMON_HOST_CONCURRENCY", _FETCH.per_host_concurrency, minimum=1),
            feed_fetches=_int(get, "NEWSMON_FEED_FETCHES", 32, minimum=1),
            page_fetches=_int(get, "NEWSMON_PAGE_FETCHES", 16, minimum=1),
            hold_seconds=_float(get, "NEWSMON_HOLD_SECONDS", 15.0, allow_zero=True),
            extract_timeout=_float(get, "NEWSMON_EXTRACT_TIMEOUT", 60.0),
        )


def _check_search_url(url: str) -> None:
    """A SEARCH_URL a backend can use: tantivy:///dir or sqlite:///path, or http(s)://host[:port] with a real host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError as exc:
        raise ConfigError(f"SEARCH_URL: not a valid URL ({exc}): {url!r}") from None
    if parts.scheme in ("sqlite", "tantivy"):
        if not parts.path.lstrip("/"):
            raise ConfigError(f"SEARCH_URL: a {parts.scheme} search URL needs a path, got {url!r}")
        return
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"SEARCH_URL: use tantivy:///dir or sqlite:///path (embedded) or http(s)://host:7700 (Meilisearch), got {url!r}")
    host = parts.hostname or ""
    if not re.fullmatch(r"[A-Za-z0-9.\-]+|[0-9A-Fa-f:.]+", host) or port == 0:
        raise ConfigError(f"SEARCH_URL: {host!r} is not a host name or IP address in {url!r}")


def _int(get, name: str, default: int, *, minimum: int, maximum: int = 2**62) -> int:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    if value > maximum:
        raise ConfigError(f"{name}: must be at most {maximum}, got {raw!r}")
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


def _bool(get, name: str, default: bool) -> bool:
    raw = get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected yes/no (1/0, true/false), got {raw!r}")


def _base_url(raw: str | None) -> str:
    """The web UI's public address for links in e-mails: http(s)://host[:port][/prefix], no trailing slash."""
    if raw is None:
        return "http://127.0.0.1:8000"
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", raw):
        raise ConfigError(f"NEWSMON_BASE_URL: expected http(s)://host[:port][/path], got {raw!r}")
    return raw.rstrip("/")
