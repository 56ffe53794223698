"""Sign in and out (accounts are made with `newsmon users add`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from monitor.web.security import authenticate, csrf_protect, login, logout
from monitor.web.ui import render

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only local paths: a login link must not bounce the user to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
async def login_form(request: Request, next: str | None = None):
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login", dependencies=[Depends(csrf_protect)])
async def login_submit(request: Request, email: str = Form(""), password: str = Form(""), next: str = Form("/")):
    user = await run_in_threadpool(authenticate, request.app.state.ctx.db, email[:320], password[:1000])
    if user is None:
        return render(request, "login.html", {"next": safe_next(next), "error": "wrong email or password",
                                              "email": email[:320]}, status=400)
    login(request, user)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(csrf_protect)])
async def logout_submit(request: Request):
    logout(request)
    return RedirectResponse("/", status_code=303)
