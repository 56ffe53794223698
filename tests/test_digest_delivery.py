"""Exactly-once delivery against a real SMTP server: days with and without news, DST changes,
refusing servers, a SIGKILL in the uncertain window, and two senders on one PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from monitor.app import App
from monitor.cli import cli
from monitor.digest import subscriptions as subs
from monitor.digest.deliver import DigestSender
from monitor.storage.models import Delivery, Subscription
from tests.dbfixtures import ON_POSTGRES
from tests.digestkit import SmtpServer, StoryPlan, digest_environment, free_port, seed, smtp_server  # noqa: F401

UTC = timezone.utc


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def mail_env(newsmon_env, smtp_server, monkeypatch):
    env = digest_environment(newsmon_env, smtp_server)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    app = App.from_env()
    yield app, smtp_server, env
    app.close()


def active_subscription(app, email="r@example.org", query="NATO", *, hour=7, tz="UTC", since=None, **kw) -> int:
    with app.db.session() as s:
        search = subs.find_or_create_search(s, subs.SearchSpec(query=query))
        sub = subs.subscribe(s, email, search, hour=hour, tz=tz, **kw).subscription
        subs.confirm(sub, now=since or datetime(2020, 1, 1, tzinfo=UTC))
        return sub.id


def deliveries(app, sub_id):
    with app.db.session() as s:
        return list(s.scalars(select(Delivery).where(Delivery.subscription_id == sub_id).order_by(Delivery.local_day)))


def test_digest_with_news_then_a_day_without_then_only_what_is_new(mail_env):
    app, smtp, _ = mail_env
    d1 = datetime(2026, 11, 10, 7, 0, tzinfo=UTC)
    sub_id = active_subscription(app, hour=7, tz="UTC", since=d1 - timedelta(hours=1))
    seed(app, [StoryPlan("NATO opens new base", ["a.example", "b.example"]),
               StoryPlan("Unrelated weather report", ["w.example"], text="Rain in Madrid.", topics=["weather"])],
         fetched=d1 - timedelta(hours=3))
    sender = DigestSender(app, retry_delays=())
    assert [o.state for o in sender.run(now=d1 - timedelta(minutes=1))] == []  # before the hour
    [o] = sender.run(now=d1 + timedelta(minutes=1))
    assert o.state == "sent" and o.subject == "NATO: 1 new story — 10 Nov 2026", o
    [first] = smtp.inbox.wait_for(1)
    assert "NATO opens new base" in first.text and "weather" not in first.text.lower()

    # Day 2: nothing new -> no e-mail, but the day is recorded (and not retried).
    [o] = sender.run(now=d1 + timedelta(days=1, minutes=1))
    assert o.state == "empty"
    assert [o.state for o in sender.run(now=d1 + timedelta(days=1, minutes=20))] == ["busy"]
    # Day 3: only the story stored since the previous digest.
    seed(app, [StoryPlan("NATO names new commander", ["c.example"])], fetched=d1 + timedelta(days=2, hours=-1))
    [o] = sender.run(now=d1 + timedelta(days=2, minutes=1))
    assert o.state == "sent" and o.subject == "NATO: 1 new story — 12 Nov 2026"
    msgs = smtp.inbox.wait_for(2)
    assert len(msgs) == 2 and "NATO names new commander" in msgs[1].text and "opens new base" not in msgs[1].text
    assert [d.state for d in deliveries(app, sub_id)] == ["sent", "empty", "sent"]
    # The window of each digest starts where the previous one ended: nothing falls between.
    rows = deliveries(app, sub_id)
    assert rows[1].window_start == rows[0].window_end and rows[2].window_start == rows[1].window_end


def test_subscription_confirmed_after_the_hour_starts_the_next_day(mail_env):
    app, smtp, _ = mail_env
    confirmed = datetime(2026, 11, 10, 20, 0, tzinfo=UTC)
    active_subscription(app, hour=7, since=confirmed, send_empty=True)
    sender = DigestSender(app, retry_delays=())
    assert sender.run(now=confirmed + timedelta(hours=1)) == []
    [o] = sender.run(now=datetime(2026, 11, 11, 7, 5, tzinfo=UTC))
    assert o.state == "sent" and o.local_day.isoformat() == "2026-11-11"


def test_missed_send_hour_is_caught_up_after_a_restart(mail_env):
    app, smtp, _ = mail_env
    sub_id = active_subscription(app, hour=7, send_empty=True)
    # Down from before 07:00 on the 10th until 03:00 on the 11th: the 10th is sent late, once.
    sender = DigestSender(app, retry_delays=())
    [o] = sender.run(now=datetime(2026, 11, 11, 3, 0, tzinfo=UTC))
    assert o.state == "sent" and o.local_day.isoformat() == "2026-11-10"
    assert [o.state for o in sender.run(now=datetime(2026, 11, 11, 4, 0, tzinfo=UTC))] == ["busy"]
    [o] = sender.run(now=datetime(2026, 11, 11, 7, 0, tzinfo=UTC))
    assert o.state == "sent" and o.local_day.isoformat() == "2026-11-11"
    assert [d.local_day.day for d in deliveries(app, sub_id)] == [10, 11]


@pytest.mark.parametrize("start, expected", [
    # Spring forward (29 Mar 2026): 02:00 does not exist in Berlin -> sent at 03:00 CEST (01:00 UTC).
    (datetime(2026, 3, 27, 22, 0, tzinfo=UTC), {"2026-03-28": "2026-03-28T01:00", "2026-03-29": "2026-03-29T01:00",
                                                 "2026-03-30": "2026-03-30T00:00"}),
    # Fall back (25 Oct 2026): 02:00 happens twice -> sent at the first one (00:00 UTC), not again at 01:00 UTC.
    (datetime(2026, 10, 23, 21, 0, tzinfo=UTC), {"2026-10-24": "2026-10-24T00:00", "2026-10-25": "2026-10-25T00:00",
                                                 "2026-10-26": "2026-10-26T01:00"}),
])
def test_send_hour_inside_a_dst_change_is_neither_skipped_nor_doubled(mail_env, start, expected):
    app, smtp, _ = mail_env
    sub_id = active_subscription(app, hour=2, tz="Europe/Berlin", since=start - timedelta(hours=1))
    for day in expected:  # one story stored the evening before each digest
        when = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(hours=2)
        seed(app, [StoryPlan(f"NATO news for {day}", ["a.example"])], fetched=when)
    sender = DigestSender(app, retry_delays=())
    sent_at = {}
    t = start
    while t < start + timedelta(days=3):  # a tick every 15 minutes, through both hours of a fall-back night
        for o in sender.run(now=t):
            if o.state == "sent":
                assert o.local_day.isoformat() not in sent_at, f"second digest for {o.local_day} at {t}"
                sent_at[o.local_day.isoformat()] = t.strftime("%Y-%m-%dT%H:%M")
        t += timedelta(minutes=15)
    assert sent_at == expected
    msgs = smtp.inbox.wait_for(3)
    assert len(msgs) == 3
    for msg, day in zip(msgs, expected):
        assert f"NATO news for {day}" in msg.text
    assert [d.state for d in deliveries(app, sub_id)] == ["sent"] * 3


def test_temporary_refusal_is_retried_and_the_message_arrives_once(mail_env):
    app, smtp, _ = mail_env
    sub_id = active_subscription(app, send_empty=True)
    smtp.inbox.temporary.extend(["451 4.7.1 greylisted, try again", "421 4.3.2 busy"])
    [o] = DigestSender(app, retry_delays=(0.05, 0.05)).run(now=datetime(2026, 11, 10, 8, tzinfo=UTC))
    assert o.state == "sent"
    assert len(smtp.inbox.wait_for(1)) == 1
    [row] = deliveries(app, sub_id)
    assert row.state == "sent" and row.attempts == 1


def test_server_down_then_up_backs_off_and_sends_once(mail_env, monkeypatch):
    app, smtp, env = mail_env
    port = free_port()  # nothing listens here yet: connection refused
    monkeypatch.setenv("NEWSMON_SMTP_URL", f"smtp://127.0.0.1:{port}?timeout=5")
    app2 = App.from_env()
    sub_id = active_subscription(app2, send_empty=True)
    sender = DigestSender(app2, retry_delays=(0.05,))
    t0 = datetime(2026, 11, 10, 8, tzinfo=UTC)
    [o] = sender.run(now=t0)
    assert o.state == "retry" and "cannot reach mail server" in o.detail
    [row] = deliveries(app2, sub_id)
    assert row.state == "retry" and row.next_attempt_at == t0 + timedelta(minutes=1)
    assert [o.state for o in sender.run(now=t0 + timedelta(seconds=30))] == ["busy"]  # backing off
    [o] = sender.run(now=t0 + timedelta(seconds=61))
    assert o.state == "retry"
    [row] = deliveries(app2, sub_id)
    assert row.attempts == 2 and row.next_attempt_at == t0 + timedelta(seconds=61 + 120)
    late = SmtpServer(port).start()
    try:
        [o] = sender.run(now=t0 + timedelta(minutes=4))
        assert o.state == "sent"
        assert [o.state for o in sender.run(now=t0 + timedelta(minutes=30))] == ["busy"]
        assert len(late.inbox.wait_for(1)) == 1
        time.sleep(0.3)
        assert len(late.inbox.messages) == 1
    finally:
        late.stop()
        app2.close()


def test_permanent_refusal_pauses_the_subscription_with_the_reason(mail_env):
    app, smtp, _ = mail_env
    sub_id = active_subscription(app, email="gone@example.org", send_empty=True)
    smtp.inbox.reject["gone@example.org"] = "550 5.1.1 <gone@example.org>: mailbox unavailable"
    [o] = DigestSender(app, retry_delays=(0.05,)).run(now=datetime(2026, 11, 10, 8, tzinfo=UTC))
    assert o.state == "failed" and "550" in o.detail
    with app.db.session() as s:
        sub = s.get(Subscription, sub_id)
        assert sub.state == "paused" and "550 5.1.1" in sub.paused_reason
    listing = invoke("digest", "list").output
    assert "paused" in listing and "mailbox unavailable" in listing
    status = invoke("status").output
    assert f"paused #{sub_id} gone@example.org" in status and "550" in status
    assert json.loads(invoke("status", "--json").output)["digest"]["paused"][0]["id"] == sub_id
    assert smtp.inbox.messages == []
    # Paused: nothing more is tried until resumed.
    assert DigestSender(app).run(now=datetime(2026, 11, 11, 8, tzinfo=UTC)) == []
    assert "active" in invoke("digest", "resume", str(sub_id)).output


def _sender_process(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "monitor.cli", "digest", "send", "--now"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_after_the_server_accepted_never_sends_a_second_copy(mail_env):
    app, smtp, env = mail_env
    sub_id = active_subscription(app, send_empty=True)
    procs = []

    def kill_sender(_rec):
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(30)

    smtp.inbox.on_data = kill_sender
    procs.append(_sender_process({**os.environ, **env}))
    procs[0].wait(60)
    assert procs[0].returncode == -signal.SIGKILL
    assert len(smtp.inbox.messages) == 1
    [row] = deliveries(app, sub_id)
    assert row.state == "sending"  # the server has it; the sender never recorded it
    smtp.inbox.on_data = None

    # The restart finds the row of a dead sender: uncertain, and not sent again.
    restarted = invoke("digest", "send", "--now")
    assert "busy" in restarted.output
    time.sleep(0.5)
    assert len(smtp.inbox.messages) == 1
    [row] = deliveries(app, sub_id)
    assert row.state == "uncertain" and row.message_id in row.error
    assert "uncertain" in invoke("status").output
    assert json.loads(invoke("digest", "list", "--json").output)[0]["last_delivery"]["state"] == "uncertain"
    # An operator who checked the mail log can release it; the copy has the same Message-ID.
    invoke("digest", "send", "--now", "--resend-uncertain")
    msgs = smtp.inbox.wait_for(2)
    assert len(msgs) == 2 and msgs[0].message["Message-ID"] == msgs[1].message["Message-ID"]


def test_sigkill_before_the_handover_sends_on_restart(mail_env):
    app, smtp, env = mail_env
    sub_id = active_subscription(app, send_empty=True)
    procs = []

    def kill_sender(_address):
        smtp.inbox.on_rcpt = None
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(30)

    smtp.inbox.on_rcpt = kill_sender
    procs.append(_sender_process({**os.environ, **env}))
    procs[0].wait(60)
    assert procs[0].returncode == -signal.SIGKILL and smtp.inbox.messages == []
    [row] = deliveries(app, sub_id)
    assert row.state == "claimed"
    assert ": sent" in invoke("digest", "send", "--now").output  # its owner is dead: taken over at once
    assert len(smtp.inbox.wait_for(1)) == 1
    assert [r.state for r in deliveries(app, sub_id)] == ["sent"]


def test_dry_run_and_preview_send_and_record_nothing(mail_env, tmp_path):
    app, smtp, _ = mail_env
    sub_id = active_subscription(app)
    seed(app, [StoryPlan("NATO preview story", ["a.example", "b.example"])],
         fetched=datetime.now(UTC) - timedelta(hours=1))
    out = invoke("digest", "send", "--now", "--dry-run").output
    assert "would-send" in out and "NATO: 1 new story" in out
    html = tmp_path / "digest.html"
    result = invoke("digest", "preview", str(sub_id), "--html", str(html))
    assert result.exit_code == 0 and "NATO preview story" in result.output and "Subject: NATO: 1 new story" in result.output
    assert "NATO preview story" in html.read_text()
    assert smtp.inbox.messages == [] and deliveries(app, sub_id) == []
    assert invoke("digest", "preview", "999").exit_code == 2


@pytest.mark.postgres
@pytest.mark.skipif(not ON_POSTGRES, reason="needs DATABASE_URL pointing at PostgreSQL (runs in the PostgreSQL pass of .ci/run)")
def test_two_schedulers_on_postgresql_send_one_email(mail_env, tmp_path):
    app, smtp, env = mail_env
    feeds = tmp_path / "feeds.yaml"  # a local feed that does not answer: the runs do nothing else
    feeds.write_text(f"feeds:\n  - url: http://127.0.0.1:{free_port()}/feed.xml\n")
    now = datetime.now(UTC)
    ids = [active_subscription(app, email=f"pg{i}@example.org", hour=now.hour, tz="UTC", send_empty=True,
                               since=now - timedelta(days=2)) for i in range(5)]
    full_env = {**os.environ, **env}
    runs = [subprocess.Popen([sys.executable, "-m", "monitor.cli", "run", "--feeds", str(feeds), "--workers", "1"],
                             env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        smtp.inbox.wait_for(5, timeout=90)
        time.sleep(3)  # give the slower scheduler its chance to send a second copy
    finally:
        for p in runs:
            p.send_signal(signal.SIGTERM)
        for p in runs:
            p.communicate(timeout=60)
    assert sorted(r for m in smtp.inbox.messages for r in m.rcpt_tos) == [f"pg{i}@example.org" for i in range(5)]
    for sub_id in ids:
        assert [d.state for d in deliveries(app, sub_id)] == ["sent"]
    # And two `digest send --now` started together on the same subscriptions (new day via --now is
    # still the same day): nothing more.
    sends = [_sender_process(full_env) for _ in range(2)]
    for p in sends:
        p.communicate(timeout=60)
    time.sleep(0.5)
    assert len(smtp.inbox.messages) == 5


def test_scheduler_job_survives_a_broken_backend_and_sends_when_it_recovers(mail_env, monkeypatch, caplog):
    from monitor.digest.job import DigestJob

    app, smtp, _ = mail_env
    sub_id = active_subscription(app, send_empty=True, hour=0)
    job = DigestJob(app)
    job.sender.retry_delays = ()

    def broken(_q):
        raise RuntimeError("index file is corrupt")

    monkeypatch.setattr(app.backend, "search", broken)
    job()  # must not raise
    [row] = deliveries(app, sub_id)
    assert row.state == "retry" and "index file is corrupt" in row.error
    assert "retry" in caplog.text
    monkeypatch.undo()
    with app.db.session() as s:  # the backoff has passed
        s.get(Delivery, row.id).next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)
    job()
    assert [r.state for r in deliveries(app, sub_id)] == ["sent"] and len(smtp.inbox.wait_for(1)) == 1


def test_story_text_cannot_inject_markup_into_the_email(mail_env):
    app, smtp, _ = mail_env
    active_subscription(app, query="NATO")
    seed(app, [StoryPlan('NATO <img src=x onerror=alert(1)> "quoted" & more', ["a.example"],
                         text="NATO <a href='javascript:alert(1)'>click</a> text")],
         fetched=datetime.now(UTC) - timedelta(hours=1))
    [o] = DigestSender(app, retry_delays=()).run(force=True)
    assert o.state == "sent"
    [m] = smtp.inbox.wait_for(1)
    assert "<img" not in m.html and "&lt;img src=x onerror=alert(1)&gt;" in m.html
    assert "javascript:" not in m.html and "javascript:" not in m.text and "NATO click text" in m.text
