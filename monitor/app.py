"""The application context: settings, database, search backend and feeds config, opened once.

The CLI, the scheduler and the demo all build one `App`; tests build one against a temporary
home. Nothing here does work on import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from monitor.config import ConfigError, FeedsConfig, Settings, load_feeds_config
from monitor.storage.db import Database
from search import open_backend
from search.backend import SearchBackend


@dataclass
class App:
    settings: Settings
    feeds_path: Path | None = None
    _closers: list = field(default_factory=list)

    @classmethod
    def from_env(cls, feeds_path: str | Path | None = None) -> "App":
        settings = Settings.from_env()
        return cls(settings, Path(feeds_path) if feeds_path else None)

    @cached_property
    def feeds_config(self) -> FeedsConfig:
        return load_feeds_config(self.feeds_path or self.settings.feeds_path)

    @cached_property
    def db(self) -> Database:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        db = Database(self.settings.database_url)
        self._closers.append(db.close)
        return db

    @cached_property
    def backend(self) -> SearchBackend:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        try:
            backend = open_backend(self.settings.search_url, api_key=self.settings.search_api_key)
        except ValueError as exc:  # a malformed or unsupported SEARCH_URL
            raise ConfigError(f"SEARCH_URL: {exc}") from None
        except OSError as exc:  # an embedded index whose folder cannot be made
            raise ConfigError(f"SEARCH_URL: cannot open the search index: {exc}") from None
        try:
            backend.setup()
        except OSError as exc:
            backend.close()
            raise ConfigError(f"SEARCH_URL: cannot open the search index: {exc}") from None
        except BaseException:
            backend.close()
            raise
        self._closers.append(backend.close)
        return backend

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()
