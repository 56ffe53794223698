"""Auth helpers every router shares: password hashes, the signed-cookie session's user, CSRF tokens.

Routers (ours and the digest's) use them as FastAPI dependencies::

    from monitor.web.security import current_user, require_admin, csrf_protect, csrf_token

    @router.post("/thing", dependencies=[Depends(csrf_protect)])
    def thing(request: Request, user: WebUser | None = Depends(current_user)): ...

and put ``<input type="hidden" name="csrf_token" value="{{ csrf_token(request) }}">`` in each form
(the template global ``csrf_token`` is registered by the app factory).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import Request

from monitor.errors import NewsmonError

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_PASSWORD = 8


class LoginRequired(NewsmonError):
    """The page needs a signed-in user (pages redirect to /login, the API answers 401)."""


class Forbidden(NewsmonError):
    """The signed-in user may not do this (403)."""


class CsrfError(NewsmonError):
    """A form arrived without the token of this session (403)."""


@dataclass(frozen=True)
class WebUser:
    id: int
    email: str
    is_admin: bool


# ------------------------------------------------------------------ passwords


def hash_password(password: str) -> str:
    """A salted scrypt hash in one string: scrypt$n$r$p$salt$hash (stdlib, no extra dependency)."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password too short: use at least {MIN_PASSWORD} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


# ------------------------------------------------------------------ session user


def login(request: Request, user: WebUser) -> None:
    """Start a session for `user` (a fresh CSRF token too, so a token seen before login is useless)."""
    request.session.clear()
    request.session["uid"] = user.id
    request.session["csrf"] = secrets.token_urlsafe(32)


def logout(request: Request) -> None:
    request.session.clear()


def current_user(request: Request) -> WebUser | None:
    """Dependency: the signed-in user, or None. Looked up on each request so a removed user is out."""
    if "web_user" in request.scope:
        return request.scope["web_user"]
    uid = request.session.get("uid") if "session" in request.scope else None
    user = None
    if isinstance(uid, int):
        from monitor.storage.models import User

        with request.app.state.ctx.db.session() as s:
            row = s.get(User, uid)
            if row is not None:
                user = WebUser(row.id, row.email, row.is_admin)
    if user is None and uid is not None:
        request.session.pop("uid", None)
    request.scope["web_user"] = user
    return user


def require_user(request: Request) -> WebUser:
    user = current_user(request)
    if user is None:
        raise LoginRequired("sign in to see this page")
    return user


def require_admin(request: Request) -> WebUser:
    user = require_user(request)
    if not user.is_admin:
        raise Forbidden("this needs an admin account")
    return user


def authenticate(db, email: str, password: str) -> WebUser | None:
    from monitor.storage.queries import find_user

    with db.session() as s:
        row = find_user(s, email)
        if row is None:
            verify_password(password, hash_password("x" * MIN_PASSWORD))  # same time either way
            return None
        if not verify_password(password, row.password_hash):
            return None
        row.last_login_at = datetime.now(timezone.utc)
        return WebUser(row.id, row.email, row.is_admin)


# ------------------------------------------------------------------ CSRF


def csrf_token(request: Request) -> str:
    """The CSRF token of this session (created on first use); put it in every form."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def csrf_protect(request: Request) -> None:
    """Dependency for every state-changing route: the form field (or header) must match the session's."""
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise CsrfError("the form expired or came from another site: reload the page and try again")


def load_secret(settings) -> str:
    """NEWSMON_SECRET, else a random secret kept in $NEWSMON_HOME/web-secret (sessions survive restarts)."""
    if settings.secret:
        return settings.secret
    path = settings.home / "web-secret"
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        token = secrets.token_urlsafe(48)
        try:
            with open(path, "x", encoding="utf-8") as fh:  # two processes starting at once keep one secret
                fh.write(token)
            path.chmod(0o600)
        except FileExistsError:
            return path.read_text().strip()
        return token
