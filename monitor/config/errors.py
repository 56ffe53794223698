"""The configuration error, shared by settings and feeds.yaml validation."""

from monitor.errors import NewsmonError


class ConfigError(NewsmonError):
    """Bad configuration: the message names the variable, or the file, line and key path."""
