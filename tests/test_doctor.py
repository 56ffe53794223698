"""`newsmon doctor`: one verdict per check, a non-zero exit when one fails, on real parts."""

from __future__ import annotations

import json
import socket

import pytest
from alembic import command
from click.testing import CliRunner

from monitor.cli import cli
from monitor.storage.db import Database, _alembic_config


def _doctor(*args):
    result = CliRunner().invoke(cli, ["doctor", "--json", *args])
    assert "Traceback" not in result.output
    return result.exit_code, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
            return "250 OK"

    controller = Controller(Sink(), hostname="127.0.0.1", port=_closed_port())
    controller.start()
    yield f"smtp://127.0.0.1:{controller.port}"
    controller.stop()


def test_a_healthy_setup_passes_every_check(newsmon_env, smtp_server, monkeypatch):
    Database(newsmon_env["DATABASE_URL"]).close()  # created and migrated, as any command does
    monkeypatch.setenv("NEWSMON_SMTP_URL", smtp_server)
    code, checks = _doctor()
    assert code == 0, checks
    assert [checks[n]["verdict"] for n in ("configuration", "database", "migrations", "search", "smtp")] == ["ok"] * 5
    assert "0 document(s) for 0 article(s)" in checks["search"]["detail"]
    assert "EHLO accepted" in checks["smtp"]["detail"]
    text = CliRunner().invoke(cli, ["doctor"]).output
    assert "all checks passed" in text and "[ok  ] smtp" in text


def test_each_failure_is_named_and_exits_non_zero(newsmon_env, tmp_path, monkeypatch):
    Database(newsmon_env["DATABASE_URL"]).close()
    bad_feeds = tmp_path / "feeds.yaml"
    bad_feeds.write_text("feeds:\n  - url: ftp://nowhere.example/feed\n")
    monkeypatch.setenv("NEWSMON_FEEDS", str(bad_feeds))
    monkeypatch.setenv("SEARCH_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("NEWSMON_SMTP_URL", f"smtp://127.0.0.1:{_closed_port()}")
    code, checks = _doctor()
    assert code == 1
    assert checks["configuration"]["verdict"] == "fail" and "feeds.yaml:2" in checks["configuration"]["detail"]
    assert checks["database"]["verdict"] == "ok" and checks["migrations"]["verdict"] == "ok"
    assert checks["search"]["verdict"] == "fail" and "unavailable" in checks["search"]["detail"]
    assert checks["smtp"]["verdict"] == "fail" and "refused" in checks["smtp"]["detail"].lower()
    text = CliRunner().invoke(cli, ["doctor"]).output
    assert "[FAIL] search" in text and "3 check(s) failed: configuration, search, smtp" in text


def test_an_old_schema_and_an_unreachable_database(newsmon_env, monkeypatch):
    db = Database(newsmon_env["DATABASE_URL"])
    with db.engine.begin() as conn:
        cfg = _alembic_config(db.engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    db.close()
    code, checks = _doctor()
    assert code == 1 and checks["migrations"]["verdict"] == "fail" and "missing" in checks["migrations"]["detail"]

    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{_closed_port()}/test")
    code, checks = _doctor()
    assert code == 1 and checks["database"]["verdict"] == "fail" and "cannot connect" in checks["database"]["detail"]
    assert checks["migrations"]["verdict"] == "skip"


def test_index_lag_is_a_warning_not_a_failure(newsmon_env):
    from tests.test_outbox import _store

    db = Database(newsmon_env["DATABASE_URL"])
    _store(db, 3)
    db.close()
    code, checks = _doctor()
    assert code == 0 and checks["search"]["verdict"] == "warn"
    assert "0 document(s) for 3 article(s)" in checks["search"]["detail"] and "outbox 3 waiting" in checks["search"]["detail"]
    assert CliRunner().invoke(cli, ["index"]).exit_code == 0
    code, checks = _doctor()
    assert code == 0 and checks["search"]["verdict"] == "ok"
