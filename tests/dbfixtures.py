"""Pytest plugin: real databases for tests.

Without DATABASE_URL every test gets a fresh SQLite file. With DATABASE_URL pointing at
PostgreSQL every test gets its own schema in that database (dropped afterwards), so the whole
suite runs unchanged on both.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text

from monitor.storage.db import Database, normalise_url

PG_URL = os.environ.get("DATABASE_URL", "").strip()
ON_POSTGRES = PG_URL.startswith(("postgres://", "postgresql"))


def pytest_report_header(config):
    return f"database: {'PostgreSQL ' + PG_URL.split('@')[-1] if ON_POSTGRES else 'SQLite (temporary files)'}"


@contextmanager
def temporary_database(tmp_dir: Path) -> Iterator[str]:
    """A URL to an empty database of the kind this run tests; removed afterwards."""
    if not ON_POSTGRES:
        yield f"sqlite:///{tmp_dir / 'newsmon.sqlite'}"
        return
    base = normalise_url(PG_URL)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def app_environment(tmp_dir: Path, database_url: str) -> dict[str, str]:
    """Environment for the app and CLI: a temporary home, this run's database, 127.0.0.1 allowed."""
    return {
        "NEWSMON_HOME": str(tmp_dir / "home"),
        "DATABASE_URL": database_url,
        "SEARCH_URL": f"tantivy:///{tmp_dir / 'home' / 'search-index'}",
        "NEWSMON_ALLOW_HOSTS": "127.0.0.1",
        "NEWSMON_FEEDS": "",
        "NEWSMON_HOST_INTERVAL": "0",
    }


@pytest.fixture
def database_url(tmp_path: Path):
    with temporary_database(tmp_path) as url:
        yield url


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.close()


@pytest.fixture
def newsmon_env(tmp_path: Path, database_url: str, monkeypatch):
    env = app_environment(tmp_path, database_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
