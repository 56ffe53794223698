"""Sending digests exactly once per subscription and local day, and confirmations at once.

How exactly-once is kept (see also README.md in this package):

1. Claim before sending. A `digest_deliveries` row with the unique key (subscription, local
   day) is inserted in its own transaction before anything is rendered. Of two schedulers (or
   a scheduler and `newsmon digest send`) on one database, only the one whose INSERT commits
   owns that day; the other gets an IntegrityError and moves on. PostgreSQL serialises the two
   INSERTs on the unique index, SQLite on its write lock.
2. The local day is computed in the subscription's IANA zone, so a day exists once whatever the
   clock does: on the spring-forward day a send hour inside the gap (02:00 in Europe/Berlin)
   resolves to the first instant after it (03:00 CEST); on the fall-back day the repeated hour
   is taken at its first occurrence and the unique key stops the second one.
3. State moves claimed -> sending -> sent. `sending` is committed right before the DATA
   command, after the server has accepted sender and recipient. A crash before that point
   leaves `claimed`: nothing was handed over, so the row is taken over once its lease expires
   (or at once when its owner process is known to be dead) and sent.
4. The uncertain window: if the process dies (or the connection breaks) after `sending` was
   committed and before `sent` is, the server may or may not have queued the message. We
   cannot prove either, so the row becomes `uncertain` and is NEVER resent automatically:
   a lost digest is one missing day the next digest makes up for (its window starts where the
   uncertain one ended, ... see `window_start`), a duplicate cannot be taken back. An operator
   can look the deterministic Message-ID up in the mail server's log and resend with
   `newsmon digest send --resend-uncertain` if it is not there.
5. Temporary failures (4xx, refused connections, timeouts) are retried a few times at once and
   then the row waits in `retry` with an exponential backoff; permanent ones (5xx) mark the
   row `failed` and pause the subscription with the server's reason.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from monitor.digest import content as content_mod
from monitor.digest import render, subscriptions as subs
from monitor.digest.errors import (DigestError, MailConfigError, PermanentSendError, TemporarySendError,
                                   UncertainSendError)
from monitor.digest.mailer import SmtpConfig, send_with_retries
from monitor.storage.models import Delivery, Subscription

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=15)
MAX_BACKOFF = timedelta(hours=1)
MAX_WINDOW = timedelta(days=31)
FIRST_WINDOW = timedelta(hours=24)
RESEND_CONFIRMATION_AFTER = timedelta(minutes=5)
CONFIRMATION_RETRY_FOR = timedelta(days=7)
DELIVERED = ("sent", "empty", "uncertain")  # a later digest starts where these ended


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(claimed_by: str | None) -> bool:
    """True only when the owner ran on this host and its process is gone (never a guess)."""
    try:
        host, pid, _ = (claimed_by or "").split(":")
        if host != socket.gethostname():
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError, OSError):
        return False
    return False


# ------------------------------------------------------------------------- when is a digest due


def due_at(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The UTC instant of `hour`:00 on local `day`; a time in a DST gap maps to the end of the gap."""
    local = datetime.combine(day, time(hour), tzinfo=tz)  # fold=0: first occurrence on fall-back days
    return local.astimezone(timezone.utc)


def due_day(sub: Subscription, now: datetime, *, force: bool = False) -> date | None:
    """The local day whose digest is due at `now`: today after the hour, else yesterday if it was missed.

    A day counts only when the subscription was already active at that day's hour: one
    confirmed at 21:00 gets its first digest the next morning, and a process that was down over
    the send hour still sends that day's digest when it comes back (until the next day's hour).
    """
    tz = ZoneInfo(sub.timezone)
    today = now.astimezone(tz).date()
    if force:
        return today
    since = sub.active_since or sub.confirmed_at
    for day in (today, today - timedelta(days=1)):
        at = due_at(day, sub.send_hour, tz)
        if now >= at:
            return day if since is not None and since <= at else None
    return None


def message_id(sub: Subscription, day: date, domain: str) -> str:
    # Deterministic: the same digest always has the same id, so a copy resent by hand after an
    # uncertain crash is recognisable (and many mail systems drop the second copy).
    return f"<digest.{sub.id}.{day:%Y%m%d}.v{sub.token_version}@{domain}>"


# ------------------------------------------------------------------------- results


@dataclass
class Outcome:
    subscription_id: int
    email: str
    local_day: date | None
    state: str          # sent | empty | retry | failed | uncertain | cancelled | would-send | would-skip | busy
    detail: str = ""
    subject: str | None = None
    stories: int = 0


# ------------------------------------------------------------------------- the sender


class DigestSender:
    """One worker's view of the delivery table; `run` sends everything that is due."""

    def __init__(self, app, *, worker_id: str | None = None, retry_delays: tuple[float, ...] = (1.0, 3.0)):
        self.app = app
        self.db = app.db
        self.worker_id = worker_id or new_worker_id()
        self.retry_delays = retry_delays
        self._ctx: render.MailContext | None = None
        self._smtp: SmtpConfig | None = None

    # configuration is read lazily so `preview` and `--dry-run` work without SMTP settings
    @property
    def ctx(self) -> render.MailContext:
        if self._ctx is None:
            self._ctx = render.MailContext.from_settings(self.app.settings)
        return self._ctx

    @property
    def smtp(self) -> SmtpConfig:
        if self._smtp is None:
            self._smtp = SmtpConfig.from_url(self.app.settings.smtp_url)
        return self._smtp

    # ---------------------------------------------------------------- entry points

    def run(self, *, now: datetime | None = None, force: bool = False, dry_run: bool = False,
            only: int | None = None) -> list[Outcome]:
        now = now or utcnow()
        if not dry_run:
            self.recover(now)
        with self.db.session() as s:
            q = select(Subscription).where(Subscription.state == subs.ACTIVE).order_by(Subscription.id)
            if only is not None:
                q = q.where(Subscription.id == only)
            active = list(s.scalars(q))
        if active and not dry_run:
            self.ctx, self.smtp  # noqa: B018  (configuration errors once, before any claim)
        outcomes = []
        for sub in active:
            day = due_day(sub, now, force=force)
            if day is None:
                continue
            try:
                outcomes.append(self.preview_outcome(sub, day, now) if dry_run else self.deliver(sub, day, now, force=force))
            except DigestError as exc:
                outcomes.append(Outcome(sub.id, sub.email, day, "error", str(exc)))
            except Exception as exc:  # one broken subscription must not stop the others
                log.exception("digest for subscription %s failed", sub.id)
                outcomes.append(Outcome(sub.id, sub.email, day, "error", f"{type(exc).__name__}: {exc}"))
        return outcomes

    def recover(self, now: datetime) -> int:
        """Rows left in `sending` by a dead process become `uncertain` (never resent automatically)."""
        n = 0
        with self.db.session() as s:
            stale = [(r.id, r.claimed_by, r.message_id) for r in s.scalars(select(Delivery).where(Delivery.state == "sending"))
                     if r.lease_until < now or _owner_is_dead(r.claimed_by)]
            for row_id, owner, mid in stale:
                error = (f"the sender ({owner}) stopped after handing the message to the mail server and before "
                         f"recording the result; not resent (Message-ID {mid})")
                # Conditional on the state we read, so a sender finishing right now keeps its `sent`.
                changed = s.execute(update(Delivery).where(Delivery.id == row_id, Delivery.state == "sending")
                                    .values(state="uncertain", error=error, finished_at=now)).rowcount
                if changed:
                    log.warning("digest delivery %s is uncertain: %s", row_id, error)
                    n += changed
        return n

    # ---------------------------------------------------------------- claim

    def claim(self, sub: Subscription, day: date, now: datetime, *, force: bool = False) -> Delivery | None:
        """Own (subscription, day) or return None when another worker has it or it is done."""
        lease = now + LEASE
        with self.db.session() as s:
            row = s.scalar(select(Delivery).where(Delivery.subscription_id == sub.id, Delivery.local_day == day))
            if row is None:
                domain = self.ctx.mail_from.split("@")[-1]
                row = Delivery(subscription_id=sub.id, local_day=day, state="claimed", claimed_by=self.worker_id,
                               lease_until=lease, attempts=0, message_id=message_id(sub, day, domain), created_at=now)
                s.add(row)
                try:
                    s.flush()
                except IntegrityError:
                    s.rollback()
                    return None
                # Older days still waiting for a retry are folded into this digest (its window
                # starts where the last delivered one ended), never sent on top of it.
                s.execute(update(Delivery).where(
                    Delivery.subscription_id == sub.id, Delivery.local_day < day, Delivery.state == "retry",
                ).values(state="superseded", finished_at=now, error="folded into the digest of " + day.isoformat()))
                return row
            takeable = (row.state == "retry" and (force or row.next_attempt_at is None or row.next_attempt_at <= now)) or (
                row.state == "claimed" and (row.lease_until < now or _owner_is_dead(row.claimed_by)))
            if not takeable:
                return None
            # Compare-and-set on the state we read: of two workers only one UPDATE matches.
            same_owner = (Delivery.claimed_by.is_(None) if row.claimed_by is None
                          else Delivery.claimed_by == row.claimed_by)
            won = s.execute(update(Delivery).where(Delivery.id == row.id, Delivery.state == row.state, same_owner)
                            .values(state="claimed", claimed_by=self.worker_id, lease_until=lease)).rowcount
            if won != 1:
                return None
            s.refresh(row)
            return row

    # ---------------------------------------------------------------- one digest

    def deliver(self, sub: Subscription, day: date, now: datetime, *, force: bool = False) -> Outcome:
        row = self.claim(sub, day, now, force=force)
        if row is None:
            return Outcome(sub.id, sub.email, day, "busy", "already sent, in progress elsewhere, or waiting to retry")
        try:
            return self._deliver_claimed(row.id, now)
        except BaseException as exc:
            # Anything unexpected before the hand-over: give the claim back for a later try
            # (after the hand-over the row stays `sending` and becomes uncertain: never resent).
            with self.db.session() as s:
                s.execute(update(Delivery).where(Delivery.id == row.id, Delivery.state == "claimed",
                                                 Delivery.claimed_by == self.worker_id)
                          .values(state="retry", claimed_by=None, next_attempt_at=now + timedelta(minutes=1),
                                  error=f"internal error: {type(exc).__name__}: {exc}"[:500]))
            raise

    def window_start(self, s, sub: Subscription, day: date, end: datetime) -> datetime:
        prev = s.scalar(select(Delivery).where(
            Delivery.subscription_id == sub.id, Delivery.local_day < day, Delivery.state.in_(DELIVERED),
            Delivery.window_end.is_not(None)).order_by(Delivery.local_day.desc()).limit(1))
        start = prev.window_end if prev is not None else end - FIRST_WINDOW
        return max(start, end - MAX_WINDOW)

    def build(self, s, sub: Subscription, day: date, now: datetime, *, start: datetime | None = None):
        end = content_mod.window_end_for(s, now)
        start = start or self.window_start(s, sub, day, end)
        try:
            return content_mod.collect(s, self.app.backend, sub.saved_search, start, max(start, end))
        except DigestError:
            raise
        except Exception as exc:  # the search backend is down or broken: try again later
            raise TemporarySendError(f"search backend: {exc}") from None

    def _deliver_claimed(self, row_id: int, now: datetime) -> Outcome:
        with self.db.session() as s:
            row = s.get(Delivery, row_id)
            sub = s.get(Subscription, row.subscription_id)
            day = row.local_day
            if sub.state != subs.ACTIVE:
                row.state, row.finished_at, row.error = "cancelled", now, f"subscription is {sub.state}"
                return Outcome(sub.id, sub.email, day, "cancelled", row.error)
            try:
                content = self.build(s, sub, day, now)
            except TemporarySendError as exc:
                return self._retry(s, row, sub, now, str(exc))
            row.window_start, row.window_end, row.story_count = content.window_start, content.window_end, content.total_stories
            if content.empty and not sub.send_empty:
                row.state, row.finished_at, row.claimed_by = "empty", now, None
                return Outcome(sub.id, sub.email, day, "empty", "nothing new: no e-mail")
            msg = render.digest_message(self.ctx, sub, content, day, row.message_id)
            email, subject, stories = sub.email, str(msg["Subject"]), content.total_stories
        return self._send(row_id, sub.id, email, day, msg, subject, stories, now)

    def _send(self, row_id, sub_id, email, day, msg, subject, stories, now) -> Outcome:
        def handover() -> None:
            with self.db.session() as s:
                won = s.execute(update(Delivery).where(
                    Delivery.id == row_id, Delivery.claimed_by == self.worker_id,
                    Delivery.state.in_(("claimed", "sending"))).values(state="sending", sending_at=utcnow())).rowcount
            if won != 1:  # our lease was taken over: the other worker sends it, we must not
                raise _LostClaim()

        try:
            send_with_retries(self.smtp, msg, delays=self.retry_delays, on_handover=handover)
        except _LostClaim:
            return Outcome(sub_id, email, day, "busy", "lease taken over by another worker")
        except TemporarySendError as exc:
            with self.db.session() as s:
                return self._retry(s, s.get(Delivery, row_id), s.get(Subscription, sub_id), now, str(exc))
        except PermanentSendError as exc:
            with self.db.session() as s:
                row, sub = s.get(Delivery, row_id), s.get(Subscription, sub_id)
                row.state, row.error, row.finished_at, row.attempts = "failed", str(exc), utcnow(), row.attempts + 1
                subs.pause(sub, f"mail server refused the digest of {day.isoformat()}: {exc}")
            log.warning("digest for %s refused permanently, subscription %s paused: %s", email, sub_id, exc)
            return Outcome(sub_id, email, day, "failed", str(exc), subject, stories)
        except UncertainSendError as exc:
            with self.db.session() as s:
                row = s.get(Delivery, row_id)
                row.state, row.error, row.finished_at = "uncertain", f"{exc}; not resent (Message-ID {row.message_id})", utcnow()
            return Outcome(sub_id, email, day, "uncertain", str(exc), subject, stories)
        with self.db.session() as s:
            row = s.get(Delivery, row_id)
            row.state, row.finished_at, row.error, row.claimed_by = "sent", utcnow(), None, None
            row.attempts += 1
        return Outcome(sub_id, email, day, "sent", "", subject, stories)

    def _retry(self, s, row: Delivery, sub: Subscription, now: datetime, error: str) -> Outcome:
        row.attempts += 1
        delay = min(MAX_BACKOFF, timedelta(minutes=1) * 2 ** (row.attempts - 1))
        row.state, row.error, row.next_attempt_at, row.claimed_by = "retry", error, now + delay, None
        log.warning("digest for %s not sent (%s); retry in %s", sub.email, error, delay)
        return Outcome(sub.id, sub.email, row.local_day, "retry", f"{error}; next try {row.next_attempt_at:%H:%M} UTC")

    # ---------------------------------------------------------------- previews and dry runs

    def preview(self, sub_id: int, *, now: datetime | None = None, day: date | None = None):
        """(message, content) of the digest the subscription would get now; sends nothing, writes nothing."""
        now = now or utcnow()
        with self.db.session() as s:
            sub = subs.get_subscription(s, sub_id)
            day = day or now.astimezone(ZoneInfo(sub.timezone)).date()
            content = self.build(s, sub, day, now)
            domain = self.ctx.mail_from.split("@")[-1]
            msg = render.digest_message(self.ctx, sub, content, day, message_id(sub, day, domain))
            return msg, content

    def preview_outcome(self, sub: Subscription, day: date, now: datetime) -> Outcome:
        with self.db.session() as s:
            row = s.scalar(select(Delivery).where(Delivery.subscription_id == sub.id, Delivery.local_day == day))
            if row is not None and row.state not in ("retry",):
                return Outcome(sub.id, sub.email, day, "would-skip", f"already {row.state}")
            sub = s.get(Subscription, sub.id)
            content = self.build(s, sub, day, now)
            if content.empty and not sub.send_empty:
                return Outcome(sub.id, sub.email, day, "would-skip", "nothing new")
            subject = render.subject_for(content, day)
            return Outcome(sub.id, sub.email, day, "would-send", "", subject, content.total_stories)

    def resend_uncertain(self, now: datetime | None = None) -> int:
        """An operator checked the mail log: let uncertain deliveries be sent again."""
        now = now or utcnow()
        with self.db.session() as s:
            return s.execute(update(Delivery).where(Delivery.state == "uncertain").values(
                state="retry", next_attempt_at=now, error="resend requested by operator")).rowcount

    # ---------------------------------------------------------------- confirmations

    def send_confirmation(self, sub_id: int, *, now: datetime | None = None, force: bool = False) -> Outcome:
        """Send the opt-in e-mail now. At most one per subscription per few minutes, even with two workers."""
        now = now or utcnow()
        smtp, ctx = self.smtp, self.ctx  # configuration errors before the claim below
        with self.db.session() as s:
            sub = subs.get_subscription(s, sub_id)
            if sub.state != subs.PENDING:
                return Outcome(sub.id, sub.email, None, "skipped", f"subscription is {sub.state}")
            recent = now - RESEND_CONFIRMATION_AFTER
            not_recent = or_(Subscription.confirm_sent_at.is_(None), Subscription.confirm_sent_at < recent)
            conditions = [Subscription.id == sub_id, Subscription.state == subs.PENDING] + ([] if force else [not_recent])
            won = s.execute(update(Subscription).where(*conditions).values(confirm_sent_at=now)).rowcount
            if won != 1:
                return Outcome(sub.id, sub.email, None, "skipped",
                               f"a confirmation e-mail was sent at {sub.confirm_sent_at:%H:%M} UTC; check the inbox")
            s.refresh(sub)
            domain = ctx.mail_from.split("@")[-1]
            msg = render.confirmation_message(ctx, sub, f"<confirm.{sub.id}.{uuid.uuid4().hex}@{domain}>")
            email = sub.email
        try:
            send_with_retries(smtp, msg, delays=self.retry_delays)
        except (TemporarySendError, UncertainSendError) as exc:
            with self.db.session() as s:
                # Give the claim back so the scheduler tries again (uncertain: a second opt-in
                # mail is harmless, a missing one blocks the subscriber).
                s.execute(update(Subscription).where(Subscription.id == sub_id).values(confirm_sent_at=None))
            return Outcome(sub_id, email, None, "retry", f"confirmation e-mail not sent yet: {exc}")
        except PermanentSendError as exc:
            with self.db.session() as s:
                subs.pause(s.get(Subscription, sub_id), f"mail server refused the confirmation e-mail: {exc}")
            return Outcome(sub_id, email, None, "failed", str(exc))
        return Outcome(sub_id, email, None, "sent", "confirmation e-mail sent", str(msg["Subject"]))

    def pending_confirmations(self, now: datetime | None = None) -> list[Outcome]:
        """Opt-in e-mails that could not go out when the subscriber asked (mail server down)."""
        now = now or utcnow()
        with self.db.session() as s:
            ids = list(s.scalars(select(Subscription.id).where(
                Subscription.state == subs.PENDING, Subscription.confirm_sent_at.is_(None),
                Subscription.created_at > now - CONFIRMATION_RETRY_FOR)))
        return [self.send_confirmation(i, now=now) for i in ids]


class _LostClaim(DigestError):
    """Our lease on a delivery was taken over before the hand-over: the other worker sends it."""
