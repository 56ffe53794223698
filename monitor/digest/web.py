"""The digest's web side, as a FastAPI router the web UI mounts: subscribe form, opt-in link, one-click unsubscribe.

- GET  /digest/confirm?token=…       opens the opt-in link (signed, expires) and activates the subscription
- GET  /digest/unsubscribe?token=…   shows a confirm button (mail scanners that follow links change nothing)
- POST /digest/unsubscribe?token=…   unsubscribes; RFC 8058 one-click (body List-Unsubscribe=One-Click)
                                      works without cookie or CSRF token: the signed token is the authority
- GET  /digest/subscribe?q=…&topic=… a page with the subscribe form, prefilled
- POST /digest/subscribe             the form handler (CSRF-checked), sends the confirmation e-mail at once
`subscribe_form(request, response, …)` renders the form partial for the search page.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from monitor.digest import csrf, render, service
from monitor.digest.errors import DigestError, InvalidInput, MailConfigError, TokenError
from monitor.digest.subscriptions import SearchSpec

COMMON_ZONES = ["UTC", "Europe/Berlin", "Europe/London", "Europe/Paris", "Europe/Brussels", "Europe/Kyiv",
                "Europe/Warsaw", "America/New_York", "America/Chicago", "America/Los_Angeles", "Asia/Tokyo",
                "Australia/Sydney"]


def _page(title: str, message: str, *, status: int = 200, form: Markup | None = None, ok: bool = True) -> HTMLResponse:
    html = render.environment().get_template("page.html").render(title=title, message=message, form=form, ok=ok)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def subscribe_form(request: Request, response: Response, *, secret: str | None, query: str = "",
                   topics: list[str] | None = None, sources: list[str] | None = None, name: str = "",
                   hour: int = 7, tz: str = "UTC", email: str = "", action: str = "/digest/subscribe") -> Markup:
    """The "subscribe to this search" form (HTML partial); sets the CSRF cookie on `response` when needed."""
    token, nonce, new = csrf.issue(secret, request.cookies.get(csrf.COOKIE))
    if new:
        response.set_cookie(csrf.COOKIE, nonce, max_age=csrf.MAX_AGE, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https", path="/")
    zones = COMMON_ZONES if tz in COMMON_ZONES else [tz] + COMMON_ZONES
    return Markup(render.environment().get_template("subscribe_form.html").render(
        action=action, csrf_field=csrf.FIELD, csrf_token=token, query=query, topics=topics or [],
        sources=sources or [], name=name, hour=hour, tz=tz, zones=zones, email=email))


def digest_router(app, *, current_user=None, is_admin=None) -> APIRouter:
    """Routes bound to one `monitor.app.App` (settings, database, search backend).

    `current_user(request) -> str | None` is the web UI's login (when given, POST /digest/searches
    saves a search for that user); `is_admin(request) -> bool` guards GET /digest/status.
    """
    router = APIRouter(prefix="/digest", tags=["digest"])
    secret = app.settings.secret

    if current_user is not None:
        @router.post("/searches")
        async def save_search(request: Request):
            user = current_user(request)
            if not user:
                return _page("Please log in", "Saving a search needs an account.", status=401, ok=False)
            form = await request.form()
            try:
                csrf.check(secret, str(form.get(csrf.FIELD) or ""), request.cookies.get(csrf.COOKIE))
            except TokenError as exc:
                return _page("Form expired", str(exc), status=403, ok=False)
            spec = SearchSpec(query=str(form.get("q") or ""), topics=[str(t) for t in form.getlist("topic")],
                              sources=[str(t) for t in form.getlist("source")],
                              languages=[str(t) for t in form.getlist("language")],
                              name=str(form.get("name") or "").strip() or None)
            try:
                search_id = await run_in_threadpool(service.save_search, app, spec, owner=user)
            except InvalidInput as exc:
                return _page("Please check the form", str(exc), status=400, ok=False)
            return JSONResponse({"id": search_id}, status_code=201)

    if is_admin is not None:
        @router.get("/status")
        def status(request: Request):
            if not is_admin(request):
                return JSONResponse({"error": "admin only"}, status_code=403)
            from monitor.digest.status import digest_status

            with app.db.session() as s:
                return JSONResponse(json.loads(json.dumps(digest_status(s).as_dict(), default=str)))

    @router.get("/confirm", response_class=HTMLResponse)
    def confirm(token: str = "") -> HTMLResponse:
        try:
            sub, changed = service.confirm(app, token)
        except DigestError as exc:
            return _page("Link not valid", str(exc), status=400, ok=False)
        what = "is confirmed" if changed else "was already confirmed"
        return _page("Subscription confirmed",
                     f"Your daily digest of “{sub.saved_search.name}” for {sub.email} {what}. The first one arrives "
                     f"at {sub.send_hour:02d}:00 {sub.timezone} on a day with news.")

    @router.get("/unsubscribe", response_class=HTMLResponse)
    def unsubscribe_page(token: str = "") -> HTMLResponse:
        try:
            sub = service.subscription_from_token(app, "unsubscribe", token)
        except DigestError as exc:
            return _page("Link not valid", str(exc), status=400, ok=False)
        if sub.state == "unsubscribed":
            return _page("Already unsubscribed", f"{sub.email} no longer receives “{sub.saved_search.name}”.")
        form = Markup(render.environment().get_template("unsubscribe_form.html").render(token=token))
        return _page("Unsubscribe?", f"Stop the daily digest of “{sub.saved_search.name}” for {sub.email}?", form=form)

    @router.post("/unsubscribe", response_class=HTMLResponse)
    async def unsubscribe(request: Request, token: str = "") -> HTMLResponse:
        if not token:
            form = await request.form()
            token = str(form.get("token") or "")
        try:
            sub, changed = await run_in_threadpool(service.unsubscribe, app, token)
        except DigestError as exc:
            return _page("Link not valid", str(exc), status=400, ok=False)
        return _page("Unsubscribed", f"{sub.email} will no longer receive the daily digest of “{sub.saved_search.name}”."
                     + ("" if changed else " (It was already cancelled.)"))

    @router.get("/subscribe", response_class=HTMLResponse)
    def subscribe_page(request: Request, q: str = "", name: str = "", email: str = "") -> HTMLResponse:
        response = HTMLResponse("")
        form = subscribe_form(request, response, secret=secret, query=q, name=name, email=email[:320],
                              topics=request.query_params.getlist("topic"),
                              sources=request.query_params.getlist("source"))
        page = _page("Daily digest", "Get one e-mail a day with what is new for this search.", form=form)
        page.raw_headers.extend(h for h in response.raw_headers if h[0] == b"set-cookie")
        return page

    @router.post("/subscribe", response_class=HTMLResponse)
    async def subscribe(request: Request) -> HTMLResponse:
        form = await request.form()
        try:
            csrf.check(secret, str(form.get(csrf.FIELD) or ""), request.cookies.get(csrf.COOKIE))
        except TokenError as exc:
            return _page("Form expired", str(exc), status=403, ok=False)
        name = str(form.get("name") or "").strip()
        spec = SearchSpec(query=str(form.get("q") or ""), topics=[str(t) for t in form.getlist("topic")],
                          sources=[str(t) for t in form.getlist("source")],
                          languages=[str(t) for t in form.getlist("language")], name=name or None)
        try:
            # Database and SMTP work off the event loop: the confirmation goes out before we answer.
            out = await run_in_threadpool(service.subscribe, app, str(form.get("email") or ""), spec=spec,
                                          hour=str(form.get("hour") or "7"), tz=str(form.get("tz") or "UTC"))
        except InvalidInput as exc:
            return _page("Please check the form", str(exc), status=400, ok=False)
        except MailConfigError:
            return _page("Digests are not set up", "This server cannot send e-mail yet; please tell its operator.",
                         status=503, ok=False)
        conf = out.confirmation
        if out.state == "active":
            return _page("Already subscribed", f"{out.email} already receives this digest; its hour and time zone were updated.")
        if conf is not None and conf.state == "failed":
            return _page("Address refused", f"The mail server refused {out.email}: {conf.detail}", status=400, ok=False)
        if conf is not None and conf.state == "retry":
            return _page("Almost done", f"The confirmation e-mail to {out.email} could not be sent right now; "
                         "it will be retried in the next minutes.", status=202)
        return _page("Check your inbox", f"We sent a confirmation link to {out.email}. The digest starts once you open it.")

    return router
