"""The app factory: routers, sessions in signed cookies, security headers, errors as 4xx pages or JSON."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from search.backend import SearchBackendError
from search.query import QuerySyntaxError

from monitor.web.params import ParamError
from monitor.web.security import CsrfError, Forbidden, LoginRequired, current_user, load_secret
from monitor.web.ui import make_templates, render

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
SESSION_COOKIE = "newsmon_session"
SESSION_MAX_AGE = 14 * 24 * 3600

# No inline script or style anywhere: everything comes from /static on this origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
PUBLIC_PATHS = ("/login", "/healthz", "/static/")


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response (streamed ones too)."""

    def __init__(self, app, hsts: bool) -> None:
        self.app, self.hsts = app, hsts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if self.hsts:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


DIGEST_PUBLIC_PATHS = ("/digest/confirm", "/digest/unsubscribe")



def _digest_routes(ctx):
    """The digest's routes, given the web UI's login so signed-in users can save searches."""
    from monitor.digest.web import digest_router

    def user_email(request):
        user = current_user(request)
        return user.email if user else None

    def is_admin(request):
        user = current_user(request)
        return bool(user and user.is_admin)

    return digest_router(ctx, current_user=user_email, is_admin=is_admin)


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path.endswith((".json", ".jsonl", ".csv", ".atom"))


def _error(request: Request, status: int, message: str, **extra):
    if _wants_json(request):
        return JSONResponse({"error": {"status": status, "message": message, **extra}}, status_code=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def create_app(ctx, *, extra_routers: Sequence[APIRouter] = (), public_paths: Iterable[str] = ()) -> FastAPI:
    """The ASGI app over an opened `monitor.app.App`.

    `extra_routers` are included as they are (the digest's subscribe/confirm/unsubscribe routes);
    `public_paths` are path prefixes reachable without login when NEWSMON_REQUIRE_LOGIN is on
    (e.g. the digest's signed unsubscribe links).
    """
    settings = ctx.settings
    # Signed opt-in and unsubscribe links must work for subscribers who have no account.
    public = tuple(PUBLIC_PATHS) + DIGEST_PUBLIC_PATHS + tuple(public_paths)

    def login_gate(request: Request) -> None:
        if settings.require_login and not request.url.path.startswith(public):
            if current_user(request) is None:
                raise LoginRequired("this newsmon requires signing in")

    app = FastAPI(
        title="newsmon", version="1",
        description="Search news on NATO, Ukraine aid and Trump foreign policy: articles, stories, timelines, export.",
        docs_url=None, redoc_url=None, openapi_url="/openapi.json",  # /docs is our own page: no CDN
        dependencies=[Depends(login_gate)],
    )
    app.state.ctx = ctx
    app.state.templates = make_templates()
    # The default NEWSMON_BASE_URL (for e-mail links) is not a fact about this server: links then
    # use the address the request came to.
    default_base = type(settings).__dataclass_fields__["base_url"].default
    app.state.base_url = settings.base_url if settings.base_url and settings.base_url != default_base else None
    app.state.known_topics = sorted({t.name for t in ctx.feeds_config.topics})
    secure = bool(settings.base_url and settings.base_url.startswith("https://"))
    app.add_middleware(SessionMiddleware, secret_key=load_secret(settings), session_cookie=SESSION_COOKIE,
                       max_age=SESSION_MAX_AGE, same_site="lax", https_only=secure)
    app.add_middleware(SecurityHeaders, hsts=secure)

    @app.exception_handler(ParamError)
    async def _param(request: Request, exc: ParamError):
        return _error(request, 400, str(exc), param=exc.param)

    @app.exception_handler(QuerySyntaxError)
    async def _syntax(request: Request, exc: QuerySyntaxError):
        return _error(request, 400, f"q: {exc}", param="q", position=exc.position)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ())[1:]) or "request"
        return _error(request, 400, f"{where}: {first.get('msg', 'invalid value')}", param=where)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired):
        if _wants_json(request) or request.method != "GET":
            return _error(request, 401, str(exc))
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import urlencode

        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        return _error(request, 403, str(exc))

    @app.exception_handler(CsrfError)
    async def _csrf(request: Request, exc: CsrfError):
        return _error(request, 403, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"nothing at {request.url.path}"
        return _error(request, exc.status_code, message)

    @app.exception_handler(SearchBackendError)
    async def _backend(request: Request, exc: SearchBackendError):
        log.warning("search backend failed: %s", exc)
        return _error(request, 503, f"the search index is not answering right now: {exc}")

    from monitor.web import routes_admin, routes_api, routes_auth, routes_export, routes_pages

    for router in (routes_pages.router, routes_api.router, routes_api.health_router, routes_export.router,
                   routes_auth.router, routes_admin.router, _digest_routes(ctx), *extra_routers):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    return app
