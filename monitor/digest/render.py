"""Digest and confirmation e-mails as multipart text + HTML messages (Jinja2 templates).

Everything from articles is plain text here and HTML-escaped by the template engine; summaries
were reduced to text from sanitised HTML, so no markup from a feed reaches an inbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from monitor.digest import tokens
from monitor.digest.content import DigestContent
from monitor.digest.errors import MailConfigError
from monitor.digest.validate import email_address
from monitor.storage.models import Subscription

SPARK = "▁▂▃▄▅▆▇█"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=PackageLoader("monitor.digest", "templates"),
                      autoescape=select_autoescape(["html"], default_for_string=False),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["day"] = format_day
    return env


def format_day(d: date | datetime) -> str:
    return f"{d.day} {d:%b %Y}"


def one_line(text: str, limit: int = 120) -> str:
    """For headers: no control characters, bounded length (the inputs were validated already)."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class MailContext:
    base_url: str
    mail_from: str
    secret: str

    @classmethod
    def from_settings(cls, settings) -> "MailContext":
        if not settings.mail_from:
            raise MailConfigError("NEWSMON_MAIL_FROM is not set (the From address of digest e-mails)")
        try:
            sender = email_address(settings.mail_from.split("<")[-1].rstrip(">"))
        except Exception:
            raise MailConfigError(f"NEWSMON_MAIL_FROM is not an e-mail address: {settings.mail_from!r}") from None
        tokens._key(settings.secret)  # fail early with the clear message
        return cls(settings.base_url.rstrip("/"), sender, settings.secret)

    def link(self, path: str, **params: str) -> str:
        return f"{self.base_url}{path}" + (f"?{urlencode(params)}" if params else "")

    def unsubscribe_url(self, sub: Subscription) -> str:
        return self.link("/digest/unsubscribe", token=tokens.make_token(self.secret, tokens.UNSUBSCRIBE, sub.id, sub.token_version))

    def confirm_url(self, sub: Subscription, now: float | None = None) -> str:
        return self.link("/digest/confirm", token=tokens.make_token(
            self.secret, tokens.CONFIRM, sub.id, sub.token_version, max_age=tokens.CONFIRM_MAX_AGE, now=now))


def subject_for(content: DigestContent, day: date) -> str:
    n = content.total_stories
    what = "nothing new" if n == 0 else f"{n} new {'story' if n == 1 else 'stories'}"
    return one_line(f"{one_line(content.search.name, 80)}: {what} — {format_day(day)}", 200)


def sparkline(counts: list[int]) -> str:
    if not counts or max(counts) == 0:
        return ""
    top = max(counts)
    return "".join(SPARK[min(len(SPARK) - 1, (c * (len(SPARK) - 1) + top - 1) // top)] if c else " " for c in counts)


def _base_message(ctx: MailContext, sub: Subscription, subject: str, message_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = Address("newsmon digest", addr_spec=ctx.mail_from)
    msg["To"] = Address(addr_spec=sub.email)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    return msg


def digest_message(ctx: MailContext, sub: Subscription, content: DigestContent, day: date, message_id: str) -> EmailMessage:
    for st in content.stories:
        st.url = ctx.link(f"/stories/{st.story_id}") if st.story_id else ctx.link(f"/articles/{st.headline_article_id}")
    unsubscribe = ctx.unsubscribe_url(sub)
    values = dict(
        content=content, sub=sub, day=day, subject=subject_for(content, day), unsubscribe_url=unsubscribe,
        search_url=ctx.link("/search", q=content.search.query, **({"topic": content.search.topics[0]} if content.search.topics else {})),
        spark=sparkline(content.timeline), more=content.total_stories - len(content.stories),
        spark_max=max(content.timeline or [0]), base_url=ctx.base_url,
    )
    msg = _base_message(ctx, sub, values["subject"], message_id)
    # RFC 2369 + RFC 8058: mail programs show an unsubscribe button that POSTs to this URL.
    msg["List-Unsubscribe"] = f"<{unsubscribe}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["List-Id"] = f"newsmon digest {sub.saved_search_id} <digest-{sub.saved_search_id}.{ctx.mail_from.split('@')[-1]}>"
    msg["Precedence"] = "bulk"
    env = environment()
    msg.set_content(env.get_template("digest.txt").render(**values))
    msg.add_alternative(env.get_template("digest.html").render(**values), subtype="html")
    return msg


def confirmation_message(ctx: MailContext, sub: Subscription, message_id: str) -> EmailMessage:
    search = sub.saved_search
    values = dict(sub=sub, search=search, confirm_url=ctx.confirm_url(sub), base_url=ctx.base_url,
                  hours=tokens.CONFIRM_MAX_AGE // 3600)
    msg = _base_message(ctx, sub, one_line(f"Confirm your daily newsmon digest: {one_line(search.name, 80)}", 200), message_id)
    env = environment()
    msg.set_content(env.get_template("confirm.txt").render(**values))
    msg.add_alternative(env.get_template("confirm.html").render(**values), subtype="html")
    return msg
