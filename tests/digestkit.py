"""Real parts for digest tests: an aiosmtpd server on 127.0.0.1, the digest web router under uvicorn,
stored articles and stories indexed into the embedded search backend."""

from __future__ import annotations

import hashlib
import email
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Callable, Iterator

import pytest
from aiosmtpd.controller import Controller

SECRET = "test-secret-0123456789abcdef"
MAIL_FROM = "digest@newsmon.example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    @property
    def html(self) -> str:
        return self.message.get_body(("html",)).get_content()

    def links(self, path: str) -> list[str]:
        """Every distinct URL in the plain-text part that contains `path`."""
        return sorted({u for u in re.findall(r"https?://\S+", self.text) if path in u})


class Inbox:
    """aiosmtpd handler: keeps every accepted message; can refuse recipients or fail temporarily."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.reject: dict[str, str] = {}          # address -> 5xx reply at RCPT
        self.temporary: deque[str] = deque()      # replies given at RCPT before accepting again
        self.on_data: Callable[[Received], None] | None = None
        self.on_rcpt: Callable[[str], None] | None = None
        self.connections = 0
        self._cond = threading.Condition()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.on_rcpt is not None:
            self.on_rcpt(address)
        if address in self.reject:
            return self.reject[address]
        if self.temporary:
            return self.temporary.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=default_policy)
        rec = Received(envelope.mail_from, list(envelope.rcpt_tos), raw, msg)
        with self._cond:
            self.messages.append(rec)
            self._cond.notify_all()
        if self.on_data is not None:
            # The server has the whole message (a real MTA has queued it by now) but has not
            # answered yet: the window in which a sender crash leaves the outcome unknown.
            self.on_data(rec)
        return "250 2.0.0 OK: queued"

    def wait_for(self, n: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n and time.monotonic() < deadline:
                self._cond.wait(0.2)
        return list(self.messages)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


class SmtpServer:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.inbox = Inbox()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=20"

    def start(self) -> "SmtpServer":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


class WebServer:
    """The digest router on a minimal FastAPI app, served by uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, app, port: int | None = None, **router_options):
        import uvicorn
        from fastapi import FastAPI

        from monitor.digest.web import digest_router

        self.port = port or free_port()
        api = FastAPI()
        api.include_router(digest_router(app, **router_options))
        self.server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "WebServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "uvicorn did not start"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def digest_environment(base_env: dict, smtp: SmtpServer | None, base_url: str = "http://127.0.0.1:9") -> dict:
    env = dict(base_env)
    env.update({
        "NEWSMON_SMTP_URL": smtp.url if smtp else f"smtp://127.0.0.1:{free_port()}?timeout=5",
        "NEWSMON_MAIL_FROM": MAIL_FROM,
        "NEWSMON_BASE_URL": base_url,
        "NEWSMON_SECRET": SECRET,
    })
    return env


# ----------------------------------------------------------------------------- corpus


@dataclass
class StoryPlan:
    headline: str
    sources: list[str]
    text: str = "NATO allies met in Brussels to discuss defence spending and support for Ukraine."
    topics: list[str] = field(default_factory=lambda: ["nato"])
    fetched: datetime | None = None


def seed(app, plans: list[StoryPlan], *, fetched: datetime) -> list[int]:
    """Store one story per plan (one article per source) and index them; returns the story ids."""
    from monitor.storage.articles import enqueue_index
    from monitor.storage.models import Article, ArticleTopic, Story
    from monitor.storage.outbox import drain_outbox

    ids = []
    with app.db.session() as s:
        for plan in plans:
            when = plan.fetched or fetched
            first = None
            for k, source in enumerate(plan.sources):
                slug = re.sub(r"\W+", "-", plan.headline.lower()).strip("-")
                a = Article(canonical_url=f"https://{source}/{slug}-{k}", url=f"https://{source}/{slug}-{k}",
                            title=plan.headline if k == 0 else f"{plan.headline} ({source})",
                            text=f"{plan.text} Reported by {source}.", summary=f"<p>{plan.text}</p><script>x()</script>",
                            text_source="page", published_at=when - timedelta(minutes=30 - k), fetched_at=when + timedelta(seconds=k),
                            source=source, content_hash=hashlib.sha256(f"{slug}-{k}-{source}".encode()).hexdigest())
                s.add(a)
                s.flush()
                for t in plan.topics:
                    s.add(ArticleTopic(article_id=a.id, topic=t))
                if first is None:
                    first = a
                    s.add(Story(id=a.id, headline_article_id=a.id, headline=plan.headline, first_seen=when,
                                last_updated=when, article_count=len(plan.sources), source_count=len(set(plan.sources))))
                    s.flush()
                a.story_id = first.id
                enqueue_index(s, a.id)
            ids.append(first.id)
    res = drain_outbox(app.db, app.backend)
    assert res.error is None, res.error
    return ids
