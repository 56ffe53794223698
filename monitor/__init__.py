"""newsmon: media-monitoring news aggregator (the application)."""

__version__ = "0.1.0"
