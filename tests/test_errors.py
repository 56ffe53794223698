"""Every exception newsmon defines belongs to one hierarchy rooted at NewsmonError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import click

import monitor
from monitor.errors import NewsmonError


def _monitor_modules():
    for info in pkgutil.walk_packages(monitor.__path__, "monitor."):
        if ".migrations" in info.name or info.name.endswith("__main__"):  # run, not imported
            continue
        yield importlib.import_module(info.name)


def test_every_monitor_exception_subclasses_newsmon_error():
    found = []
    for module in _monitor_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, BaseException):
                continue
            if issubclass(cls, click.ClickException):  # CLI usage errors belong to click's own hierarchy
                continue
            found.append(cls)
            assert issubclass(cls, NewsmonError), f"{cls.__module__}.{cls.__name__} does not subclass NewsmonError"
    names = {cls.__name__ for cls in found}
    assert {"ConfigError", "FetchError", "FeedParseError", "ExtractionError", "OpmlError", "DatabaseError",
            "InvalidURLError", "BlockedAddressError"} <= names, names


def test_value_error_subclasses_keep_their_old_base():
    from monitor.stages.opml import OpmlError
    from monitor.stages.urls import InvalidURLError

    assert issubclass(OpmlError, ValueError) and issubclass(InvalidURLError, ValueError)
