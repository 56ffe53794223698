"""A small signed double-submit CSRF token for the subscribe form (until the web UI's own lands).

The browser holds a random nonce in a SameSite=Lax, HttpOnly cookie; the form carries an
HMAC-signed copy of that nonce that expires. A cross-site page can make the browser post the
form but can neither read the cookie nor forge the signature, so its post is refused.
"""

from __future__ import annotations

import secrets

from monitor.digest import tokens
from monitor.digest.errors import TokenError

COOKIE = "newsmon_csrf"
FIELD = "csrf_token"
MAX_AGE = 12 * 3600


def issue(secret: str | None, cookie_nonce: str | None) -> tuple[str, str, bool]:
    """(form token, nonce, nonce_is_new): reuse the browser's nonce when it has one."""
    nonce = cookie_nonce if cookie_nonce and 16 <= len(cookie_nonce) <= 64 and cookie_nonce.isascii() else None
    new = nonce is None
    nonce = nonce or secrets.token_urlsafe(24)
    return tokens.make_token(secret, tokens.CSRF, 0, 0, max_age=MAX_AGE, extra=nonce), nonce, new


def check(secret: str | None, form_token: str | None, cookie_nonce: str | None) -> None:
    if not cookie_nonce or not form_token:
        raise TokenError("the form is missing its security token: reload the page and submit again")
    try:
        data = tokens.read_token(secret, tokens.CSRF, form_token)
    except TokenError:
        raise TokenError("the form's security token is not valid or has expired: reload the page and submit again") from None
    if not secrets.compare_digest(str(data.extra or ""), cookie_nonce):
        raise TokenError("the form's security token does not match this browser: reload the page and submit again")
