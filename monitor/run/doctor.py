"""`newsmon doctor`: checks an operator runs before (or while) a worker runs, each with a verdict.

Checks, in order: configuration (environment and feeds.yaml), database reachable, migrations
current, search backend reachable and its document count against the database, SMTP (only when
NEWSMON_SMTP_URL is set: connect and EHLO). A check that cannot run because an earlier one
failed says so ("skip"). Nothing is written: the database is not migrated, no mail is sent.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import asdict, dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

Verdict = Literal["ok", "warn", "fail", "skip"]

SMTP_TIMEOUT = 10.0


@dataclass
class Check:
    name: str
    verdict: Verdict
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.verdict != "fail" for c in self.checks)

    def add(self, name: str, verdict: Verdict, detail: str) -> Check:
        check = Check(name, verdict, detail)
        self.checks.append(check)
        return check

    def as_dict(self) -> dict:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def _line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:400]


def run_checks(feeds_path: str | None = None, env: dict[str, str] | None = None) -> Report:
    from monitor.config import ConfigError, Settings, load_feeds_config

    env = dict(os.environ if env is None else env)
    report = Report()
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        report.add("configuration", "fail", f"environment: {exc}")
        for name in ("database", "migrations", "search", "smtp"):
            report.add(name, "skip", "configuration failed")
        return report
    path = feeds_path or settings.feeds_path
    try:
        cfg = load_feeds_config(path)
        enabled = sum(1 for f in cfg.feeds if f.enabled)
        report.add("configuration", "ok", f"{path}: {len(cfg.feeds)} feed(s) ({enabled} enabled), "
                                          f"{len(cfg.topics)} topic rule(s); home {settings.home}")
    except ConfigError as exc:
        report.add("configuration", "fail", str(exc))

    db = _check_database(report, settings)
    if db is not None:
        try:
            articles = _check_migrations(report, db)
            _check_search(report, settings, db, articles)
        finally:
            db.close()
    else:
        report.add("migrations", "skip", "database unreachable")
        _check_search(report, settings, None, None)
    _check_smtp(report, env.get("NEWSMON_SMTP_URL", "").strip())
    return report


def _check_database(report: Report, settings):
    from sqlalchemy import text

    from monitor.storage.db import Database, DatabaseError

    shown = settings.database_url.split("@")[-1]
    from sqlalchemy.engine import make_url

    from monitor.storage.db import normalise_url

    try:
        parsed = make_url(normalise_url(settings.database_url))
    except Exception:  # noqa: BLE001 - Database() below reports a bad URL in its own words
        parsed = None
    if parsed is not None and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not os.path.exists(parsed.database):
            report.add("database", "fail", f"no database at {parsed.database} yet (`newsmon ingest --once` creates it)")
            return None
    try:
        db = Database(settings.database_url, migrate_schema=False)
    except DatabaseError as exc:
        report.add("database", "fail", str(exc))
        return None
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            kind = conn.dialect.name
            version = conn.dialect.server_version_info
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises is the verdict
        db.close()
        report.add("database", "fail", f"{shown}: cannot connect: {_line(getattr(exc, 'orig', None) or exc)}")
        return None
    report.add("database", "ok", f"{kind} {'.'.join(map(str, version or ()))} at {shown}")
    return db


def _check_migrations(report: Report, db) -> int | None:
    """Compare the database's Alembic revision with the code's heads; returns the article count."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import func, select

    from monitor.storage.db import _alembic_config
    from monitor.storage.models import Article

    heads = set(ScriptDirectory.from_config(_alembic_config(db.engine)).get_heads())
    with db.engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if not current:
        report.add("migrations", "fail", "the database has no newsmon schema yet (any command but doctor creates it)")
        return None
    if current != heads:
        behind = ", ".join(sorted(heads - current)) or "-"
        report.add("migrations", "fail", f"database at {', '.join(sorted(current))}, code at {', '.join(sorted(heads))} "
                                         f"(missing {behind}): start newsmon once to upgrade")
        return None
    report.add("migrations", "ok", f"current ({', '.join(sorted(heads))})")
    with db.session() as s:
        return s.scalar(select(func.count(Article.id))) or 0


def _check_search(report: Report, settings, db, articles: int | None) -> None:
    from search import open_backend
    from search.backend import SearchBackendError

    url = settings.search_url
    try:
        backend = open_backend(url, api_key=settings.search_api_key)
    except (ValueError, OSError) as exc:
        report.add("search", "fail", f"SEARCH_URL {url}: {_line(exc)}")
        return
    try:
        backend.setup()
        documents = backend.count()
    except (SearchBackendError, OSError) as exc:
        report.add("search", "fail", f"{url}: {_line(exc)}")
        return
    finally:
        backend.close()
    if articles is None or db is None:
        report.add("search", "ok", f"{url}: reachable, {documents} document(s)")
        return
    from monitor.storage.outbox import dead_letter_count, outbox_lag

    with db.session() as s:
        pending = outbox_lag(s)[0]
        dead = dead_letter_count(s)
    summary = f"{url}: {documents} document(s) for {articles} article(s); outbox {pending} waiting, {dead} dead letter(s)"
    if dead:
        report.add("search", "warn", summary + " — see `newsmon status`, retry with `newsmon index --retry-dead`")
    elif documents == articles:
        report.add("search", "ok", summary)
    elif pending and abs(articles - documents) <= pending:
        report.add("search", "warn", summary + " — the difference is still in the outbox (`newsmon index`)")
    else:
        report.add("search", "warn", summary + " — index and database differ: run `newsmon reindex`")


def _check_smtp(report: Report, url: str) -> None:
    if not url:
        report.add("smtp", "skip", "NEWSMON_SMTP_URL not set (no digests to send)")
        return
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        report.add("smtp", "fail", f"NEWSMON_SMTP_URL: not a URL ({exc})")
        return
    if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
        report.add("smtp", "fail", f"NEWSMON_SMTP_URL: expected smtp://host:port or smtps://host:port, got {url!r}")
        return
    host = parts.hostname
    shown = f"{parts.scheme}://{host}:{port or ''}"
    try:
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(host, port or 465, timeout=SMTP_TIMEOUT, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port or 25, timeout=SMTP_TIMEOUT)
        try:
            code, banner = client.ehlo()
            if code != 250:
                report.add("smtp", "fail", f"{shown}: EHLO answered {code} {banner.decode(errors='replace')[:200]}")
                return
            extensions = sorted(client.esmtp_features)
            if parts.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
        finally:
            try:
                client.quit()
            except smtplib.SMTPException:
                pass
    except (OSError, smtplib.SMTPException) as exc:
        report.add("smtp", "fail", f"{shown}: {_line(exc)}")
        return
    report.add("smtp", "ok", f"{shown}: EHLO accepted ({', '.join(extensions[:6]) or 'no extensions'})")
