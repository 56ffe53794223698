"""Configured feeds -> feed rows: the one helper `feeds add/import` and every pass share."""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from monitor.config import FeedConfig
from monitor.storage.db import Database
from monitor.storage.models import Feed, utcnow


def sync_feeds(db: Database, feeds: Iterable[FeedConfig]) -> list[int]:
    """Make sure every configured feed has a row; update its settings. Returns the feed ids."""
    ids = []
    with db.session() as s:
        for fc in feeds:
            feed = s.scalar(select(Feed).where(Feed.url == fc.url))
            if feed is None:
                feed = Feed(url=fc.url, next_fetch_at=utcnow())
                try:
                    with s.begin_nested():
                        s.add(feed)
                except IntegrityError:  # another worker added it just now
                    feed = s.scalar(select(Feed).where(Feed.url == fc.url))
            feed.name = fc.name or feed.name
            feed.interval_minutes = fc.interval_minutes
            feed.fetch_pages = fc.fetch_pages
            feed.enabled = fc.enabled
            feed.topics_hint = list(fc.topics_hint)
            s.flush()
            ids.append(feed.id)
    return ids
