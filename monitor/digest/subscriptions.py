"""Saved searches and subscriptions: create, find, and move between pending, active, paused, unsubscribed.

Only this module changes a subscription's state, so the rules live in one place:
pending -> active (opt-in link) -> paused <-> active, and any -> unsubscribed. Subscribing
again after unsubscribing starts over at pending with a new token version, which voids every
earlier link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.digest import validate
from monitor.digest.errors import InvalidInput, NotFound
from monitor.storage.models import Delivery, SavedSearch, Subscription

PENDING, ACTIVE, PAUSED, UNSUBSCRIBED = "pending", "active", "paused", "unsubscribed"
STATES = (PENDING, ACTIVE, PAUSED, UNSUBSCRIBED)


@dataclass
class SearchSpec:
    """What a saved search is made of, validated."""

    query: str = ""
    topics: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    name: str | None = None

    def cleaned(self) -> "SearchSpec":
        query = validate.query_text(self.query)
        topics = validate.filter_values(self.topics, "topic")
        sources = validate.filter_values(self.sources, "source")
        languages = validate.filter_values(self.languages, "language")
        name = validate.search_name(self.name) if self.name is not None else default_name(query, topics, sources)
        return SearchSpec(query, topics, sources, languages, name)


def default_name(query: str, topics: list[str], sources: list[str]) -> str:
    parts = [query] if query else []
    parts += [f"topic {t}" for t in topics] + [f"source {s}" for s in sources]
    name = ", ".join(parts) or "All news"
    return name if len(name) <= validate.MAX_NAME else name[: validate.MAX_NAME - 1] + "…"


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def find_or_create_search(s: Session, spec: SearchSpec, *, owner: str | None = None) -> SavedSearch:
    spec = spec.cleaned()
    for existing in s.scalars(select(SavedSearch).where(SavedSearch.name == spec.name, SavedSearch.query == spec.query)):
        if (sorted(existing.topics), sorted(existing.sources), sorted(existing.languages)) == (
                spec.topics, spec.sources, spec.languages):
            return existing
    search = SavedSearch(name=spec.name, query=spec.query, topics=spec.topics, sources=spec.sources,
                         languages=spec.languages, owner=owner)
    s.add(search)
    s.flush()
    return search


def get_search(s: Session, search_id: int) -> SavedSearch:
    search = s.get(SavedSearch, search_id) if 0 < search_id < 2**63 else None
    if search is None:
        raise NotFound(f"no saved search with id {search_id}")
    return search


def list_searches(s: Session) -> list[SavedSearch]:
    return list(s.scalars(select(SavedSearch).order_by(SavedSearch.id)))


def remove_search(s: Session, search_id: int) -> None:
    s.delete(get_search(s, search_id))


@dataclass
class SubscribeResult:
    subscription: Subscription
    created: bool
    needs_confirmation: bool  # a confirmation e-mail should go out now


def subscribe(s: Session, email: str, search: SavedSearch, *, hour: int | str = 7, tz: str = "UTC",
              send_empty: bool = False, now: datetime | None = None) -> SubscribeResult:
    """Create (or renew) a pending subscription; an active one only gets its hour and time zone updated."""
    email = validate.email_address(email)
    hour = validate.send_hour(hour)
    tz = validate.time_zone(tz)
    now = now or now_utc()
    sub = s.scalar(select(Subscription).where(Subscription.email == email, Subscription.saved_search_id == search.id))
    if sub is None:
        sub = Subscription(email=email, saved_search_id=search.id, send_hour=hour, timezone=tz, state=PENDING,
                           send_empty=send_empty, token_version=1, created_at=now)
        s.add(sub)
        s.flush()
        return SubscribeResult(sub, True, True)
    sub.send_hour, sub.timezone, sub.send_empty = hour, tz, send_empty
    if sub.state == UNSUBSCRIBED:
        sub.state, sub.token_version, sub.confirmed_at, sub.confirm_sent_at = PENDING, sub.token_version + 1, None, None
        sub.unsubscribed_at, sub.paused_reason, sub.active_since = None, None, None
        return SubscribeResult(sub, False, True)
    return SubscribeResult(sub, False, sub.state == PENDING)


def get_subscription(s: Session, sub_id: int) -> Subscription:
    sub = s.get(Subscription, sub_id) if 0 < sub_id < 2**63 else None
    if sub is None:
        raise NotFound(f"no subscription with id {sub_id}")
    return sub


def list_subscriptions(s: Session) -> list[Subscription]:
    return list(s.scalars(select(Subscription).order_by(Subscription.id)))


def confirm(sub: Subscription, *, now: datetime | None = None) -> bool:
    """Opt-in link opened: pending -> active. True when this call changed something."""
    if sub.state == UNSUBSCRIBED:
        raise InvalidInput("this subscription was cancelled; subscribe again to receive the digest")
    if sub.state != PENDING:
        return False
    now = now or now_utc()
    sub.state, sub.confirmed_at, sub.active_since = ACTIVE, now, now
    return True


def unsubscribe(sub: Subscription, *, now: datetime | None = None) -> bool:
    if sub.state == UNSUBSCRIBED:
        return False
    sub.state, sub.unsubscribed_at = UNSUBSCRIBED, now or now_utc()
    return True


def pause(sub: Subscription, reason: str) -> None:
    if sub.state == UNSUBSCRIBED:
        raise InvalidInput(f"subscription {sub.id} is unsubscribed; it cannot be paused")
    sub.state, sub.paused_reason = PAUSED, reason


def resume(sub: Subscription, *, now: datetime | None = None) -> bool:
    """paused -> active (or back to pending if never confirmed). True when a confirmation must be sent."""
    if sub.state == UNSUBSCRIBED:
        raise InvalidInput(f"subscription {sub.id} is unsubscribed; subscribe again instead")
    if sub.state != PAUSED:
        return False
    sub.paused_reason = None
    if sub.confirmed_at is None:
        sub.state = PENDING
        sub.confirm_sent_at = None
        return True
    sub.state, sub.active_since = ACTIVE, now or now_utc()
    return False


def remove(s: Session, sub: Subscription) -> None:
    s.delete(sub)


def last_delivery(s: Session, sub_id: int) -> Delivery | None:
    return s.scalar(select(Delivery).where(Delivery.subscription_id == sub_id)
                    .order_by(Delivery.local_day.desc()).limit(1))
