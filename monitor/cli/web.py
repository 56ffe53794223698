"""`newsmon serve` (the web UI and JSON API) and `newsmon users …` (web accounts)."""

from __future__ import annotations

import sys

import click

from monitor.cli.common import CliError, echo_json, guard, open_app


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one).")
@click.option("--feeds", type=click.Path(dir_okay=False), help="feeds.yaml (for the topic names).")
@guard
def serve(host: str, port: int, feeds: str | None) -> None:
    """Serve the web UI and the JSON API (/api/v1, /docs) until stopped."""
    from monitor.web import create_app

    app_ctx = open_app(feeds)
    try:
        app_ctx.db  # open (and migrate) before the first request, so errors show here
        app_ctx.backend
        app = create_app(app_ctx)
        serve_app(app, host, port, on_ready=lambda url: click.echo(f"newsmon web UI: {url}", err=True))
    finally:
        app_ctx.close()


def serve_app(app, host: str, port: int, on_ready=None) -> None:
    """Run uvicorn and report the real address once it listens (port 0 picks a free one)."""
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    real_port = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    if on_ready:
        on_ready(f"http://{shown}:{real_port}/")
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


@click.group()
def users() -> None:
    """Web accounts: add, list, remove, set a password."""


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        value = sys.stdin.readline().rstrip("\n")
    else:
        value = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    from monitor.web.security import MIN_PASSWORD

    if len(value) < MIN_PASSWORD:
        raise CliError(f"password too short: use at least {MIN_PASSWORD} characters")
    return value


def _check_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320 or any(c.isspace() for c in email):
        raise CliError(f"not an email address: {email!r}")
    return email


@users.command("add")
@click.argument("email")
@click.option("--admin", is_flag=True, help="May manage feeds in the web UI.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (for scripts).")
@guard
def users_add(email: str, admin: bool, password_stdin: bool) -> None:
    """Add a web account (asks for the password)."""
    from monitor.storage.models import User
    from monitor.storage.queries import find_user
    from monitor.web.security import hash_password

    email = _check_email(email)
    password = _read_password(password_stdin)
    app = open_app()
    try:
        with app.db.session() as s:
            if find_user(s, email) is not None:
                raise CliError(f"user {email} exists already (use `newsmon users passwd {email}`)")
            s.add(User(email=email, password_hash=hash_password(password), is_admin=admin))
    finally:
        app.close()
    click.echo(f"added {'admin ' if admin else ''}user {email}")


@users.command("passwd")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@guard
def users_passwd(email: str, password_stdin: bool) -> None:
    """Set a new password for a web account."""
    from monitor.storage.queries import find_user
    from monitor.web.security import hash_password

    email = _check_email(email)
    password = _read_password(password_stdin)
    app = open_app()
    try:
        with app.db.session() as s:
            user = find_user(s, email)
            if user is None:
                raise CliError(f"no such user: {email}")
            user.password_hash = hash_password(password)
    finally:
        app.close()
    click.echo(f"password changed for {email}")


@users.command("remove")
@click.argument("email")
@guard
def users_remove(email: str) -> None:
    """Remove a web account (its sessions end at the next request)."""
    from monitor.storage.queries import find_user

    email = _check_email(email)
    app = open_app()
    try:
        with app.db.session() as s:
            user = find_user(s, email)
            if user is None:
                raise CliError(f"no such user: {email}")
            s.delete(user)
    finally:
        app.close()
    click.echo(f"removed user {email}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@guard
def users_list(as_json: bool) -> None:
    """Show the web accounts."""
    from monitor.storage.queries import list_users

    app = open_app()
    try:
        with app.db.session() as s:
            rows = [{"email": u.email, "admin": u.is_admin, "created": u.created_at, "last_login": u.last_login_at}
                    for u in list_users(s)]
    finally:
        app.close()
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['email']:<40} {'admin' if r['admin'] else 'user ':<6} last login {r['last_login'] or 'never'}")
