"""Shared pytest fixtures. Each fixture family lives in its own module, loaded as a plugin."""

pytest_plugins = [
    "tests.siteserver",
    "tests.dbfixtures",
]
