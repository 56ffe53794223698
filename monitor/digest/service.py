"""The actions the CLI and the web pages share: subscribe (and mail the opt-in at once), confirm, unsubscribe."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.digest import subscriptions as subs
from monitor.digest import tokens
from monitor.digest.deliver import DigestSender, Outcome
from monitor.digest.errors import NotFound, TokenError
from monitor.digest.mailer import SmtpConfig
from monitor.digest.render import MailContext
from monitor.storage.models import Subscription


@dataclass
class SubscribeOutcome:
    subscription_id: int
    email: str
    state: str
    created: bool
    confirmation: Outcome | None  # None when no e-mail was due (already active)


def subscribe(app, email: str, *, spec: subs.SearchSpec | None = None, search_id: int | None = None,
              hour: int | str = 7, tz: str = "UTC", send_empty: bool = False, owner: str | None = None,
              sender: DigestSender | None = None) -> SubscribeOutcome:
    """Create a pending subscription and send its confirmation e-mail now (not at the next tick)."""
    # Missing or malformed mail settings: fail before writing anything.
    MailContext.from_settings(app.settings)
    SmtpConfig.from_url(app.settings.smtp_url)
    with app.db.session() as s:
        search = subs.get_search(s, search_id) if search_id is not None else subs.find_or_create_search(
            s, spec or subs.SearchSpec(), owner=owner)
        result = subs.subscribe(s, email, search, hour=hour, tz=tz, send_empty=send_empty)
        sub_id, created, needs = result.subscription.id, result.created, result.needs_confirmation
    sender = sender or DigestSender(app)
    confirmation = sender.send_confirmation(sub_id) if needs else None
    with app.db.session() as s:
        sub = s.get(Subscription, sub_id)
        return SubscribeOutcome(sub.id, sub.email, sub.state, created, confirmation)


def save_search(app, spec: subs.SearchSpec, *, owner: str | None = None) -> int:
    """Save a named query with filters (the web UI's search page, the CLI); returns its id."""
    with app.db.session() as s:
        return subs.find_or_create_search(s, spec, owner=owner).id


def subscription_from_token(app, purpose: str, token: str) -> Subscription:
    data = tokens.read_token(app.settings.secret, purpose, token)
    with app.db.session() as s:
        try:
            sub = subs.get_subscription(s, data.subscription_id)
        except NotFound:
            raise TokenError("this link is for a subscription that no longer exists") from None
        if sub.token_version != data.version:
            raise TokenError("this link belongs to an earlier subscription; use the one in the newest e-mail")
        return sub


def confirm(app, token: str) -> tuple[Subscription, bool]:
    """(subscription, changed). Raises TokenError / TokenExpired with a message for the page."""
    sub = subscription_from_token(app, tokens.CONFIRM, token)
    with app.db.session() as s:
        sub = s.get(Subscription, sub.id)
        changed = subs.confirm(sub)
        return sub, changed


def unsubscribe(app, token: str) -> tuple[Subscription, bool]:
    sub = subscription_from_token(app, tokens.UNSUBSCRIBE, token)
    with app.db.session() as s:
        sub = s.get(Subscription, sub.id)
        changed = subs.unsubscribe(sub)
        return sub, changed
