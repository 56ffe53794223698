"""Template rendering shared by the routers: one Jinja2 environment, autoescaped, with the helpers pages use."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from monitor.stages.sanitize import sanitize_html
from monitor.web.security import csrf_token, current_user

TEMPLATES_DIR = Path(__file__).parent / "templates"


def _fmt_dt(value, fmt: str = "%d %b %Y %H:%M") -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime(fmt) + (" UTC" if "%H" in fmt else "")
    if isinstance(value, date):
        return value.strftime(fmt.replace(" %H:%M", ""))
    return str(value)


def _ago(value) -> str:
    if value is None:
        return "never"
    secs = (datetime.now(timezone.utc) - value).total_seconds()
    if secs < 0:
        return "in the future"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if secs >= size:
            n = int(secs // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _safe_html(fragment: str | None) -> Markup:
    """Stored HTML is sanitised at ingest; sanitise again on the way out so no path skips it."""
    return Markup(sanitize_html(fragment))


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    env = templates.env
    env.autoescape = True
    env.filters["dt"] = _fmt_dt
    env.filters["ago"] = _ago
    env.filters["safe_html"] = _safe_html
    env.filters["num"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    env.globals["csrf_token"] = csrf_token
    env.globals["current_user"] = current_user
    return templates


def render(request: Request, name: str, context: dict | None = None, status: int = 200):
    templates: Jinja2Templates = request.app.state.templates
    ctx = {"request": request, "base_url": request.app.state.base_url}
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status)
