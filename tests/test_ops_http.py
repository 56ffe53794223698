"""`newsmon run --http`: /healthz and /metrics from a real worker process, and structured logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from monitor.run.http import HealthCheck, parse_address
from monitor.config import ConfigError
from monitor.storage.db import Database


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None


def _start(tmp_path: Path, feeds: list[str], port: int, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n" + "".join(f"  - url: {u}\n" for u in feeds))
    env = {**os.environ, **(extra_env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "--feeds", str(path), "--workers", "1", "--tick", "5",
         "--http", f"127.0.0.1:{port}", "--log-format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def _metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            return float(value)
    return None


def test_healthz_and_metrics_of_a_running_worker(site_server, newsmon_env, tmp_path):
    port = _free_port()
    base = site_server.base
    proc = _start(tmp_path, [f"{base}/natowatch.rss", f"{base}/bad/500"], port)
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            health = _get(f"http://127.0.0.1:{port}/healthz")
            if health is not None and health.status_code == 200 and health.json()["last_pass_age_seconds"] is not None:
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert health is not None and health.status_code == 200, health and health.text
        assert health.json()["status"] == "ok" and health.json()["reasons"] == []

        metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert _metric(text, "newsmon_fetches_total", kind="feed", outcome="ok") >= 1
        assert _metric(text, "newsmon_fetches_total", kind="feed", outcome="error_http_status") >= 1
        assert _metric(text, "newsmon_fetches_total", kind="page", outcome="ok") >= 1
        assert _metric(text, "newsmon_fetch_duration_seconds_count", kind="page") >= 1
        stored = _metric(text, "newsmon_articles_stored_total", status="new")
        assert stored and stored >= 1
        assert _metric(text, "newsmon_articles") == stored
        assert _metric(text, "newsmon_stories") >= 1 and _metric(text, "newsmon_near_duplicates") is not None
        assert _metric(text, "newsmon_pass_duration_seconds_count") >= 1
        assert _metric(text, "newsmon_passes_total", result="ok") >= 1
        assert _metric(text, "newsmon_database_up") == 1
        assert _metric(text, "newsmon_feeds") == 2 and _metric(text, "newsmon_feeds_failing") == 1
        for name in ("newsmon_outbox_pending", "newsmon_outbox_lag_seconds", "newsmon_index_dead_letters",
                     "newsmon_feeds_due", "newsmon_feeds_overdue", "newsmon_extraction_failures_total"):
            assert _metric(text, name) is not None, name
        assert _get(f"http://127.0.0.1:{port}/nothing").status_code == 404
    finally:
        err = _stop(proc)
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    # --log-format json: every log line is one JSON object; the pass line carries its figures.
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    # The loop logs one line per tick interval with what it did since the last one.
    passes = [r for r in lines if r.get("event") == "pass"]
    assert passes and sum(r["feeds_failed"] for r in passes) == 1
    assert sum(r["new_articles"] for r in passes) == stored
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in lines)


def test_a_slow_feed_keeps_the_worker_healthy(site_server, newsmon_env, tmp_path):
    """A feed that takes 25 s occupies only its own slot: the loop keeps ticking, so /healthz
    stays 200 the whole time (before the ingest loop, such a feed made the worker look stale)."""
    port = _free_port()
    proc = _start(tmp_path, [f"{site_server.base}/bad/slow?delay=25"], port,
                  {"NEWSMON_STALE_PASS_SECONDS": "10", "NEWSMON_READ_TIMEOUT": "40"})
    try:
        seen: list[tuple[int, dict]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            r = _get(f"http://127.0.0.1:{port}/healthz")
            if r is not None:
                seen.append((r.status_code, r.json()))
            time.sleep(0.5)
        after_first_tick = [(c, b) for c, b in seen if b.get("last_pass_age_seconds") is not None]
        assert after_first_tick, seen[-3:]
        assert all(c == 200 for c, _ in after_first_tick), [x for x in after_first_tick if x[0] != 200][:3]
    finally:
        err = _stop(proc)
    assert proc.returncode == 0, err[-2000:]


def test_healthz_is_503_when_the_loop_stops_ticking(tmp_path, monkeypatch):
    """The decision itself: no tick for longer than the stale limit, or a failed loop, is 503 with the reason."""
    from monitor.run import metrics

    db = Database(f"sqlite:///{tmp_path}/h.sqlite")
    try:
        monkeypatch.setattr(metrics.CLOCK, "last_finished", time.monotonic() - 100)
        monkeypatch.setattr(metrics.CLOCK, "last_error", None)
        stale = HealthCheck(db, stale_after=15).check()
        assert not stale.ok and stale.reasons[0].startswith("last pass finished 100 s ago")
        monkeypatch.setattr(metrics.CLOCK, "last_finished", time.monotonic())
        assert HealthCheck(db, stale_after=15).check().ok
        monkeypatch.setattr(metrics.CLOCK, "last_error", "database went away")
        failed = HealthCheck(db, stale_after=15).check()
        assert not failed.ok and "database went away" in failed.reasons[0]
    finally:
        db.close()


def test_healthz_reports_an_unreachable_database():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = Database(f"postgresql://postgres@127.0.0.1:{port}/none", migrate_schema=False)
    try:
        health = HealthCheck(db, stale_after=600).check()
    finally:
        db.close()
    assert not health.ok and health.reasons[0].startswith("database unavailable")


def test_http_address_forms():
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    assert parse_address("9464") == ("127.0.0.1", 9464)
    for bad in ("127.0.0.1:http", "127.0.0.1:0", "127.0.0.1:70000"):
        with pytest.raises(ConfigError):
            parse_address(bad)


def test_a_bad_http_address_is_one_line(newsmon_env):
    from click.testing import CliRunner

    from monitor.cli import cli

    result = CliRunner().invoke(cli, ["run", "--http", "localhost:notaport"])
    assert result.exit_code == 2 and "--http" in result.output and "Traceback" not in result.output


def test_run_with_the_backend_down_then_back_loses_nothing(site_server, newsmon_env, tmp_path):
    """A worker whose Meilisearch is a closed port keeps storing (no traceback, the outbox grows);
    restarted on a working index, it sends everything."""
    from click.testing import CliRunner
    from sqlalchemy import func, select

    from monitor.cli import cli
    from monitor.storage.models import Article, OutboxEntry

    feeds = [f"{site_server.base}/natowatch.rss", f"{site_server.base}/ukraineaid.atom"]
    proc = _start(tmp_path, feeds, _free_port(), {"SEARCH_URL": f"http://127.0.0.1:{_free_port()}"})
    db = Database(newsmon_env["DATABASE_URL"], migrate_schema=False)
    try:
        deadline = time.monotonic() + 120
        stored = pending = 0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                with db.session() as s:
                    stored = s.scalar(select(func.count(Article.id)))
                    pending = s.scalar(select(func.count(OutboxEntry.id)))
                    done = s.scalar(select(func.count()).select_from(
                        select(Article.feed_id).distinct().subquery()))
            except Exception:  # noqa: BLE001 - tables not created yet
                continue
            if stored and done == 2:
                break
        assert proc.poll() is None and stored > 0 and pending == stored
        err = _stop(proc)
        assert proc.returncode == 0 and "Traceback" not in err
        assert any("search index not updated" in json.loads(line)["message"] for line in err.splitlines() if line)

        # Back: the same database, a working embedded index.
        port = _free_port()
        proc = _start(tmp_path, feeds, port)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            with db.session() as s:
                if s.scalar(select(func.count(OutboxEntry.id))) == 0:
                    break
        metrics = _get(f"http://127.0.0.1:{port}/metrics").text
        err = _stop(proc)
        assert proc.returncode == 0 and "Traceback" not in err, err[-2000:]
        with db.session() as s:
            total = s.scalar(select(func.count(Article.id)))
            assert s.scalar(select(func.count(OutboxEntry.id))) == 0
        assert _metric(metrics, "newsmon_outbox_pending") is not None
        status = json.loads(CliRunner().invoke(cli, ["status", "--json"]).stdout)
        assert status["index"]["documents"] == total == status["articles"] >= stored
    finally:
        if proc.poll() is None:
            proc.kill()
        db.close()

