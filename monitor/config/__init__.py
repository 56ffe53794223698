"""Configuration: settings from the environment, and the feeds.yaml file (feeds, topic rules, clustering).

Turns untrusted configuration text into typed, validated dataclasses, or raises `ConfigError`
with a message a person can act on (file, line, key path) — never a traceback.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from monitor.config.errors import ConfigError

if TYPE_CHECKING:
    from monitor.config.feedsfile import (FeedConfig, FeedDefaults, FeedsConfig, TermGroup, TopicRule,
                                          default_feeds_path, default_topics, load_feeds_config,
                                          parse_feeds_config)
    from monitor.config.settings import DEFAULT_USER_AGENT, Settings

# Loaded on first use: `newsmon search` needs Settings but not the feeds.yaml parser (PyYAML).
_LAZY = {
    **dict.fromkeys(["FeedConfig", "FeedDefaults", "FeedsConfig", "TermGroup", "TopicRule", "default_feeds_path",
                     "default_topics", "load_feeds_config", "parse_feeds_config"], "monitor.config.feedsfile"),
    **dict.fromkeys(["DEFAULT_USER_AGENT", "Settings"], "monitor.config.settings"),
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'monitor.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "ConfigError", "Settings", "FeedConfig", "FeedDefaults", "TermGroup", "TopicRule", "FeedsConfig",
    "load_feeds_config", "parse_feeds_config", "default_feeds_path", "default_topics", "DEFAULT_USER_AGENT",
]
