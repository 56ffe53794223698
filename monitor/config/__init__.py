"""Configuration: settings from the environment, and the feeds.yaml file (feeds, topic rules, clustering).

Turns untrusted configuration text into typed, validated dataclasses, or raises `ConfigError`
with a message a person can act on (file, line, key path) — never a traceback.
"""

from monitor.config.errors import ConfigError
from monitor.config.feedsfile import (
    FeedConfig,
    FeedDefaults,
    FeedsConfig,
    TermGroup,
    TopicRule,
    default_feeds_path,
    default_topics,
    load_feeds_config,
    parse_feeds_config,
)
from monitor.config.settings import DEFAULT_USER_AGENT, Settings

__all__ = [
    "ConfigError", "Settings", "FeedConfig", "FeedDefaults", "TermGroup", "TopicRule", "FeedsConfig",
    "load_feeds_config", "parse_feeds_config", "default_feeds_path", "default_topics", "DEFAULT_USER_AGENT",
]
