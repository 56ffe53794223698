"""What every command shares: the error type and exit codes, JSON output, opening the app."""

from __future__ import annotations

import functools
import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from monitor.app import App

EXIT_USAGE = 2
EXIT_RUNTIME = 1


class CliError(click.ClickException):
    """A usage, configuration or database problem: one line on stderr, exit code 2."""

    exit_code = EXIT_USAGE


class RuntimeFailure(click.ClickException):
    """Something outside us failed (the search backend is down): one line on stderr, exit code 1."""

    exit_code = EXIT_RUNTIME


def _json_default(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=None, default=_json_default))


def open_app(feeds: str | None = None) -> "App":
    from monitor.app import App
    from monitor.config import ConfigError

    try:
        return App.from_env(feeds)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def guard(fn):
    """Turn configuration and database errors into one clear line and exit code 2, and search
    backend failures (down, unreachable, refusing) into one line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from monitor.config import ConfigError
        from monitor.storage.db import DatabaseError
        from search.backend import BackendUnavailable, SearchBackendError

        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise CliError(f"configuration error: {exc}") from None
        except DatabaseError as exc:
            raise CliError(f"database error: {exc}") from None
        except BackendUnavailable as exc:
            raise RuntimeFailure(f"search backend unavailable: {one_line(exc)}") from None
        except SearchBackendError as exc:
            raise RuntimeFailure(f"search backend error: {one_line(exc)}") from None

    return wrapper


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (backends sometimes return pages of text)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def parse_day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliError(f"{name}: expected a date like 2025-02-10, got {value!r}") from None
