"""Search layer: backend protocol, query model, Tantivy, SQLite FTS5 and Meilisearch backends.

Imports nothing from monitor/. Pick a backend with :func:`open_backend`.
"""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

from .backend import (BackendUnavailable, Hit, SearchBackend, SearchBackendError, SearchResults,
                      TimelineBucket)
from .documents import SearchDocument
from .query import QuerySyntaxError, SearchQuery, UnsupportedQuery, parse_query

__all__ = [
    "open_backend", "SearchBackend", "SearchDocument", "SearchQuery", "SearchResults", "Hit", "TimelineBucket",
    "SearchBackendError", "BackendUnavailable", "QuerySyntaxError", "UnsupportedQuery", "parse_query",
]


def open_backend(url: str, *, api_key: str | None = None, index: str = "articles") -> SearchBackend:
    """Open a search backend from a URL.

    ``tantivy:///relative/dir`` or ``tantivy:////absolute/dir`` (embedded Tantivy index directory);
    ``sqlite:///relative/path.sqlite`` or ``sqlite:////absolute/path.sqlite`` (embedded FTS5 file,
    separate from the application database); ``http(s)://host:7700`` (Meilisearch; ``api_key`` is
    the master key or an API key; ``index`` the index uid).
    """
    parts = urlsplit(url)
    if parts.scheme in ("sqlite", "tantivy"):
        path = unquote(parts.path)
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel -> rel ; sqlite:////abs -> /abs
        if not path:
            raise ValueError(f"{parts.scheme} search URL needs a path: {url!r}")
        if parts.scheme == "tantivy":
            from .tantivy_backend import TantivyBackend
            return TantivyBackend(path)
        from .fts5 import FTS5Backend
        return FTS5Backend(path)
    if parts.scheme in ("http", "https"):
        from .meili import MeiliBackend
        return MeiliBackend(url, api_key=api_key, index=index)
    raise ValueError(f"unsupported search URL {url!r}: use tantivy:///dir, sqlite:///file or http(s)://host:7700")
