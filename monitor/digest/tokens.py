"""HMAC-signed, URL-safe tokens for confirmation links, unsubscribe links and CSRF fields.

A token is ``base64url(json payload) . base64url(HMAC-SHA256(secret, purpose | payload))``.
The purpose is part of the MAC, so an unsubscribe token can never be used as a confirmation
token or the other way round. Confirmation tokens carry an expiry; unsubscribe tokens do not
(RFC 8058 links in old e-mails must keep working) but name the subscription's token version,
so links from before a re-subscription stop working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from monitor.digest.errors import MailConfigError, TokenError, TokenExpired

CONFIRM = "confirm"
UNSUBSCRIBE = "unsubscribe"
CSRF = "csrf"
CONFIRM_MAX_AGE = 7 * 24 * 3600  # seconds a confirmation link stays valid
MAX_TOKEN_CHARS = 1000


@dataclass(frozen=True)
class TokenData:
    subscription_id: int
    version: int
    issued_at: int
    expires_at: int | None
    extra: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret: str | None) -> bytes:
    if not secret:
        raise MailConfigError("NEWSMON_SECRET is not set: it signs confirmation and unsubscribe links")
    if len(secret) < 16:
        raise MailConfigError("NEWSMON_SECRET is too short: use at least 16 random characters")
    return secret.encode("utf-8")


def _mac(secret: str | None, purpose: str, body: str) -> str:
    return _b64(hmac.new(_key(secret), f"{purpose}|{body}".encode("ascii"), hashlib.sha256).digest())


def make_token(secret: str | None, purpose: str, subscription_id: int, version: int, *,
               max_age: int | None = None, now: float | None = None, extra: str | None = None) -> str:
    issued = int(time.time() if now is None else now)
    payload = {"s": subscription_id, "v": version, "t": issued}
    if max_age is not None:
        payload["e"] = issued + max_age
    if extra is not None:
        payload["x"] = extra
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return f"{body}.{_mac(secret, purpose, body)}"


def read_token(secret: str | None, purpose: str, token: str, *, now: float | None = None) -> TokenData:
    """Check the signature and expiry; raise TokenError / TokenExpired with a one-line reason."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise TokenError("this link is malformed (was it cut off by the mail program?)")
    body, mac = token.split(".")
    if not hmac.compare_digest(mac, _mac(secret, purpose, body)):
        raise TokenError("this link is not valid: its signature does not match")
    try:
        payload = json.loads(_unb64(body))
        data = TokenData(int(payload["s"]), int(payload["v"]), int(payload["t"]),
                         int(payload["e"]) if "e" in payload else None, payload.get("x"))
    except (ValueError, KeyError, TypeError):
        raise TokenError("this link is not valid: its content cannot be read") from None
    if data.expires_at is not None and (time.time() if now is None else now) > data.expires_at:
        raise TokenExpired("this link has expired: subscribe again to get a new confirmation e-mail")
    return data
