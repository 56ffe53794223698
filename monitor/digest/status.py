"""Digest health for `newsmon status` and `newsmon digest list`: states in words, paused reasons, uncertain sends."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.storage.models import Delivery, Subscription


@dataclass
class DigestStatus:
    subscriptions: dict[str, int]
    sent_last_day: int
    retrying: int
    paused: list[dict] = field(default_factory=list)
    uncertain: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        if not sum(self.subscriptions.values()):
            return ["digest: no subscriptions"]
        states = ", ".join(f"{n} {state}" for state, n in sorted(self.subscriptions.items()) if n)
        out = [f"digest: {sum(self.subscriptions.values())} subscription(s) ({states}); "
               f"{self.sent_last_day} sent in the last 24 h, {self.retrying} waiting to retry"]
        for p in self.paused:
            out.append(f"  paused #{p['id']} {p['email']}: {p['reason'] or 'paused by an operator'}")
        for u in self.uncertain:
            out.append(f"  uncertain #{u['subscription_id']} {u['local_day']}: {u['message_id']} may or may not "
                       f"have been delivered (check the mail log; `newsmon digest send --resend-uncertain`)")
        return out


def digest_status(s: Session) -> DigestStatus:
    from datetime import datetime, timedelta, timezone

    counts = Counter(dict(s.execute(select(Subscription.state, func.count()).group_by(Subscription.state)).all()))
    day_ago = datetime.now(timezone.utc) - timedelta(days=1)
    sent = s.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.state == "sent", Delivery.finished_at >= day_ago)) or 0
    retrying = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.state == "retry")) or 0
    paused = [{"id": sub.id, "email": sub.email, "reason": sub.paused_reason}
              for sub in s.scalars(select(Subscription).where(Subscription.state == "paused").order_by(Subscription.id))]
    uncertain = [{"subscription_id": d.subscription_id, "local_day": d.local_day.isoformat(), "message_id": d.message_id}
                 for d in s.scalars(select(Delivery).where(Delivery.state == "uncertain").order_by(Delivery.id))]
    return DigestStatus({k: counts.get(k, 0) for k in ("pending", "active", "paused", "unsubscribed")},
                        sent, retrying, paused, uncertain)


def status_lines(db) -> list[str]:
    with db.session() as s:
        return digest_status(s).lines()
