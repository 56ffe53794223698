"""The scheduler job of `newsmon run`: every minute, send due digests and pending opt-in e-mails."""

from __future__ import annotations

import logging

from monitor.digest.errors import MailConfigError

log = logging.getLogger(__name__)


class DigestJob:
    """Callable for APScheduler; never raises (the scheduler must keep running for weeks)."""

    def __init__(self, app):
        from monitor.digest.deliver import DigestSender

        self.sender = DigestSender(app)
        self._config_warned = False

    def __call__(self) -> None:
        try:
            outcomes = self.sender.pending_confirmations() + self.sender.run()
        except MailConfigError as exc:
            if not self._config_warned:
                log.warning("digest e-mails are not sent: %s", exc)
                self._config_warned = True
            return
        except Exception:
            log.exception("digest job failed; trying again at the next run")
            return
        self._config_warned = False
        for o in outcomes:
            if o.state in ("sent", "retry", "failed", "uncertain", "error"):
                log.warning("digest %s %s for %s (subscription %s) %s", o.local_day or "confirmation", o.state,
                            o.email, o.subscription_id, o.detail)


def add_digest_job(scheduler, app, *, seconds: int = 60) -> None:
    """Register the digest job on an APScheduler scheduler (first run at once)."""
    from datetime import datetime, timezone

    scheduler.add_job(DigestJob(app), "interval", seconds=seconds, id="digest",
                      next_run_time=datetime.now(timezone.utc))
