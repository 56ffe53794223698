"""Sending one message over SMTP (smtplib), with every failure sorted into temporary, permanent or uncertain.

The conversation is split so the caller learns the exact moment the message is handed over:
MAIL FROM and RCPT TO are answered before any of the message is sent, so a failure there is
certain (the server does not have it). ``on_handover`` runs right before DATA; after it, a
broken connection leaves us unable to know whether the server accepted the message, and
that is reported as `UncertainSendError` so the caller never sends it again on its own.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from urllib.parse import parse_qs, unquote, urlsplit

from monitor.digest.errors import MailConfigError, PermanentSendError, TemporarySendError, UncertainSendError

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    mode: str  # plain | starttls | tls
    username: str | None = None
    password: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_url(cls, url: str | None) -> "SmtpConfig":
        """smtp://[user:password@]host[:port][?starttls=1] or smtps://… (implicit TLS)."""
        if not url:
            raise MailConfigError("NEWSMON_SMTP_URL is not set (e.g. smtp://user:password@mail.example.org:587?starttls=1)")
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise MailConfigError(f"NEWSMON_SMTP_URL: scheme must be smtp:// or smtps://, got {parts.scheme or url!r}")
        try:
            port = parts.port
        except ValueError:
            raise MailConfigError("NEWSMON_SMTP_URL: the port is not a number from 1 to 65535") from None
        if not parts.hostname:
            raise MailConfigError("NEWSMON_SMTP_URL: no host name")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls", "timeout"}
        if unknown:
            raise MailConfigError(f"NEWSMON_SMTP_URL: unknown option(s) {', '.join(sorted(unknown))} (known: starttls, timeout)")
        starttls = query.get("starttls", "0").lower() in ("1", "true", "yes", "on")
        if parts.scheme == "smtps":
            if starttls:
                raise MailConfigError("NEWSMON_SMTP_URL: smtps:// already uses TLS; drop ?starttls=1")
            mode = "tls"
        else:
            mode = "starttls" if starttls else "plain"
        try:
            timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
        except ValueError:
            raise MailConfigError("NEWSMON_SMTP_URL: timeout must be a number of seconds") from None
        return cls(
            host=parts.hostname, port=port or (465 if mode == "tls" else 25), mode=mode,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None, timeout=timeout,
        )


def _classify(code: int, text: bytes | str, what: str) -> Exception:
    reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    reply = " ".join(reply.split())[:300]
    if 400 <= code < 500:
        return TemporarySendError(f"{what}: {code} {reply}")
    return PermanentSendError(f"{what}: {code} {reply}")


def _connect(cfg: SmtpConfig) -> smtplib.SMTP:
    context = ssl.create_default_context()
    if cfg.mode == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
    smtp.ehlo()
    if cfg.mode == "starttls":
        smtp.starttls(context=context)
        smtp.ehlo()
    if cfg.username:
        smtp.login(cfg.username, cfg.password or "")
    return smtp


def send_message(cfg: SmtpConfig, msg: EmailMessage, *, on_handover: Callable[[], None] | None = None) -> str:
    """Send `msg` to its To address; return the server's reply to DATA. Raises a *SendError."""
    sender = msg["Return-Path"] or msg["From"].addresses[0].addr_spec
    recipient = msg["To"].addresses[0].addr_spec
    payload = msg.as_bytes(policy=SMTP_POLICY)
    smtp = None
    try:
        try:
            smtp = _connect(cfg)
        except smtplib.SMTPAuthenticationError as exc:
            # The account, not the subscriber: retry (an operator fixes the password), never pause.
            raise TemporarySendError(f"SMTP login refused: {exc.smtp_code} {exc.smtp_error!r}") from None
        except smtplib.SMTPResponseException as exc:
            raise _classify(exc.smtp_code, exc.smtp_error, "mail server greeting") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporarySendError(f"cannot reach mail server {cfg.host}:{cfg.port}: {exc}") from None
        try:
            code, text = smtp.mail(sender)
            if code != 250:
                raise _classify(code, text, f"MAIL FROM <{sender}>")
            code, text = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise _classify(code, text, f"recipient <{recipient}> refused")
        except smtplib.SMTPServerDisconnected as exc:
            raise TemporarySendError(f"mail server closed the connection: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            if isinstance(exc, (PermanentSendError, TemporarySendError)):
                raise
            raise TemporarySendError(f"mail server error before the message was sent: {exc}") from None
        if on_handover is not None:
            on_handover()
        try:
            code, text = smtp.data(payload)
        except smtplib.SMTPResponseException as exc:
            # A reply code, even a bad one, means the server answered: it did not take the message.
            raise _classify(exc.smtp_code, exc.smtp_error, "message refused") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise UncertainSendError(f"connection lost while handing over the message: {exc}") from None
        if code != 250:
            raise _classify(code, text, "message refused")
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass


def send_with_retries(cfg: SmtpConfig, msg: EmailMessage, *, delays: Sequence[float] = (1.0, 3.0),
                      on_handover: Callable[[], None] | None = None) -> str:
    """`send_message`, retrying temporary failures after each of `delays` seconds (then giving up)."""
    for attempt in range(len(delays) + 1):
        try:
            return send_message(cfg, msg, on_handover=on_handover)
        except TemporarySendError:
            if attempt == len(delays):
                raise
            time.sleep(delays[attempt])
    raise AssertionError("unreachable")


def mail_domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip(">").lower() or socket.getfqdn()
