"""Bad input to the digest gets one clear line and changes nothing; SMTP URLs and tokens parse strictly."""

from __future__ import annotations

import json
from email.message import EmailMessage

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.digest import tokens
from monitor.digest.errors import InvalidInput, MailConfigError, TokenError
from monitor.digest.mailer import SmtpConfig
from monitor.digest.render import one_line
from tests.digestkit import digest_environment, smtp_server  # noqa: F401


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def mail_env(newsmon_env, smtp_server, monkeypatch):
    for k, v in digest_environment(newsmon_env, smtp_server).items():
        monkeypatch.setenv(k, v)
    return smtp_server


@pytest.mark.parametrize("args, message", [
    (["not-an-address", "--query", "NATO"], "not a valid e-mail address"),
    (["a@b", "--query", "NATO"], "not a valid e-mail address"),
    (["reader@example.org\r\nBcc: victim@example.org", "--query", "NATO"], "control characters"),
    (["reader@example.org", "--query", "NATO\r\nBcc: victim@example.org"], "query must be one line"),
    (["reader@example.org", "--query", "NATO", "--name", "Evil\nBcc: victim@example.org"], "saved search name must be one line"),
    (["reader@example.org", "--query", "NATO", "--name", "Evil\rSubject: x"], "saved search name must be one line"),
    (["reader@example.org", "--query", "NATO", "--tz", "Mars/Olympus_Mons"], "unknown time zone 'Mars/Olympus_Mons'"),
    (["reader@example.org", "--query", "NATO", "--tz", "../../etc/passwd"], "unknown time zone"),
    (["reader@example.org", "--query", "NATO", "--hour", "24"], "send hour must be from 0 to 23"),
    (["reader@example.org", "--query", '"unbalanced'], "query error: unbalanced quote"),
    (["reader@example.org", "--search-id", "42"], "no saved search with id 42"),
])
def test_bad_subscribe_input_is_one_clear_line_and_stores_nothing(mail_env, args, message):
    result = invoke("digest", "subscribe", *args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output
    assert json.loads(invoke("digest", "list", "--json").output) == []
    assert mail_env.inbox.messages == []


def test_missing_mail_settings_are_named(newsmon_env, monkeypatch):
    monkeypatch.setenv("NEWSMON_SECRET", "x" * 20)
    result = invoke("digest", "subscribe", "reader@example.org", "--query", "NATO")
    assert result.exit_code == 2 and "NEWSMON_MAIL_FROM is not set" in result.output
    monkeypatch.setenv("NEWSMON_MAIL_FROM", "digest@example.org")
    monkeypatch.delenv("NEWSMON_SECRET")
    assert "NEWSMON_SECRET is not set" in invoke("digest", "subscribe", "reader@example.org").output
    monkeypatch.setenv("NEWSMON_SECRET", "x" * 20)
    result = invoke("digest", "subscribe", "reader@example.org")
    assert result.exit_code == 2 and "NEWSMON_SMTP_URL is not set" in result.output
    assert json.loads(invoke("digest", "list", "--json").output) == []
    assert "NEWSMON_BASE_URL" in CliRunner(env={"NEWSMON_BASE_URL": "ftp://x"}).invoke(cli, ["digest", "list"]).output
    for cmd in (["pause", "77"], ["resume", "77"], ["remove", "77"]):
        result = invoke("digest", *cmd)
        assert result.exit_code == 2 and "no subscription with id 77" in result.output


def test_subscription_states_in_words_through_the_cli(mail_env):
    assert invoke("digest", "subscribe", "a@example.org", "--query", "NATO", "--topic", "nato").exit_code == 0
    [row] = json.loads(invoke("digest", "list", "--json").output)
    assert row["state"] == "pending" and row["topics"] == ["nato"] and row["search"] == "NATO, topic nato"
    # A pending subscription can be paused and resumed; resuming sends a fresh opt-in mail.
    assert "paused" in invoke("digest", "pause", str(row["id"]), "--reason", "holiday").output
    assert "paused: holiday" in invoke("digest", "list").output
    assert "pending" in invoke("digest", "resume", str(row["id"])).output
    assert len(mail_env.inbox.wait_for(2)) == 2
    # Subscribing again at once does not mail again (no mail-bombing through the form).
    out = invoke("digest", "subscribe", "a@example.org", "--query", "NATO", "--topic", "nato").output
    assert "check the inbox" in out and len(mail_env.inbox.messages) == 2
    assert "#1" in invoke("digest", "searches").output
    assert "removed" in invoke("digest", "remove", str(row["id"])).output
    assert "no subscriptions" in invoke("digest", "list").output


@pytest.mark.parametrize("url, expected", [
    ("smtp://127.0.0.1:2525", SmtpConfig("127.0.0.1", 2525, "plain")),
    ("smtp://user:p%40ss@mail.example.org:587?starttls=1", SmtpConfig("mail.example.org", 587, "starttls", "user", "p@ss")),
    ("smtps://u:pw@mail.example.org", SmtpConfig("mail.example.org", 465, "tls", "u", "pw")),
    ("smtp://mail.example.org", SmtpConfig("mail.example.org", 25, "plain")),
])
def test_smtp_urls(url, expected):
    assert SmtpConfig.from_url(url) == expected


@pytest.mark.parametrize("url, message", [
    (None, "NEWSMON_SMTP_URL is not set"),
    ("http://mail.example.org", "scheme must be smtp:// or smtps://"),
    ("smtp://mail.example.org:99999", "port"),
    ("smtp://:25", "no host name"),
    ("smtps://mail.example.org?starttls=1", "already uses TLS"),
    ("smtp://mail.example.org?tls=1", "unknown option"),
])
def test_bad_smtp_urls(url, message):
    with pytest.raises(MailConfigError, match=message):
        SmtpConfig.from_url(url)


def test_tokens_round_trip_and_refuse_tampering():
    secret = "s" * 32
    t = tokens.make_token(secret, tokens.UNSUBSCRIBE, 5, 2)
    data = tokens.read_token(secret, tokens.UNSUBSCRIBE, t)
    assert (data.subscription_id, data.version, data.expires_at) == (5, 2, None)
    with pytest.raises(TokenError, match="signature"):
        tokens.read_token(secret, tokens.CONFIRM, t)
    with pytest.raises(TokenError, match="signature"):
        tokens.read_token("t" * 32, tokens.UNSUBSCRIBE, t)
    with pytest.raises(MailConfigError, match="too short"):
        tokens.make_token("short", tokens.CONFIRM, 1, 1)


def test_headers_never_carry_line_breaks():
    assert one_line("NATO\r\nBcc: x@example.org") == "NATO Bcc: x@example.org"
    msg = EmailMessage()
    with pytest.raises(ValueError):  # the mail library's own guard, behind ours
        msg["Subject"] = "a\r\nBcc: x@example.org"
    with pytest.raises(InvalidInput):
        from monitor.digest.validate import search_name
        search_name("ok\u2028Bcc: x")


def test_saved_searches_from_the_cli(mail_env):
    out = invoke("digest", "save-search", "Aid to Ukraine", "--query", '"military aid"', "--topic", "ukraine")
    assert out.exit_code == 0 and "saved search 1" in out.output
    assert invoke("digest", "save-search", "Bad\r\nBcc: x@example.org").exit_code == 2
    assert invoke("digest", "subscribe", "a@example.org", "--search-id", "1").exit_code == 0
    [row] = json.loads(invoke("digest", "list", "--json").output)
    assert row["search"] == "Aid to Ukraine" and row["query"] == '"military aid"'
    assert invoke("digest", "remove-search", "1").exit_code == 0
    assert json.loads(invoke("digest", "list", "--json").output) == []
    assert invoke("digest", "remove-search", "1").exit_code == 2
