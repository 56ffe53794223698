"""The root of newsmon's own exceptions: callers catch `NewsmonError` to handle any of them."""


class NewsmonError(Exception):
    """Something newsmon detected and can describe in one line (bad config, a failed fetch, …)."""
