"""Database models: the relational source of truth (SQLAlchemy 2.0, typed).

The search index is derived from these tables and can be rebuilt at any time. Every table
that grows with ingest has a natural unique key so re-running a feed updates rows instead of
adding new ones.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# BigInteger ids on PostgreSQL, INTEGER PRIMARY KEY (rowid alias) on SQLite.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Feed(Base):
    """A subscribed feed and its polling state (shared by all workers)."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    name: Mapped[str | None] = mapped_column(String(300))
    title: Mapped[str | None] = mapped_column(String(500))
    site_url: Mapped[str | None] = mapped_column(String(2048))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    fetch_pages: Mapped[bool] = mapped_column(Boolean, default=True)
    interval_minutes: Mapped[int] = mapped_column(Integer, default=30)
    topics_hint: Mapped[list] = mapped_column(JSON, default=list)
    # Conditional GET state.
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    # Scheduling state.
    next_fetch_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_new_article_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    unchanged_streak: Mapped[int] = mapped_column(Integer, default=0)
    # The feed's own <ttl> from its last full answer: a 304 carries no body, and must not
    # bring the next fetch sooner than the publisher asked.
    ttl_minutes: Mapped[int | None] = mapped_column(Integer)
    last_status: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(Text)
    bozo_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FetchAttempt(Base):
    """One HTTP fetch of a feed or a page: what happened, how long it took, why it failed."""

    __tablename__ = "fetch_attempts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "feed" | "page"
    url: Mapped[str] = mapped_column(String(2048))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    elapsed_ms: Mapped[float | None] = mapped_column(Float)
    http_status: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))  # ok | not_modified | error | fallback
    error_kind: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    bytes: Mapped[int | None] = mapped_column(Integer)


class Story(Base):
    """A group of articles reporting the same event; id equals its first article's id."""

    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    headline_article_id: Mapped[int | None] = mapped_column(IdType)
    headline: Mapped[str] = mapped_column(Text, default="")
    first_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_updated: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    article_count: Mapped[int] = mapped_column(Integer, default=0)
    source_count: Mapped[int] = mapped_column(Integer, default=0)


class Article(Base):
    """One article, identified by its canonical URL; copies point at their original."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    canonical_url: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))  # the link as first seen in a feed
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="SET NULL"), index=True)
    guid: Mapped[str | None] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)  # sanitised with nh3
    summary: Mapped[str | None] = mapped_column(Text)
    text_source: Mapped[str] = mapped_column(String(20))  # page | feed-content | feed-summary
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    language: Mapped[str | None] = mapped_column(String(20))
    author: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(300), index=True)  # domain without www.
    site_name: Mapped[str | None] = mapped_column(String(300))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    # Dedup and story clustering ("why is this grouped?").
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"), index=True)
    duplicate_score: Mapped[float | None] = mapped_column(Float)
    duplicate_method: Mapped[str | None] = mapped_column(String(40))
    story_id: Mapped[int | None] = mapped_column(ForeignKey("stories.id", ondelete="SET NULL"), index=True)
    story_score: Mapped[float | None] = mapped_column(Float)
    story_method: Mapped[str | None] = mapped_column(String(40))
    cluster_explanation: Mapped[dict | None] = mapped_column(JSON)

    topics: Mapped[list[ArticleTopic]] = relationship(
        back_populates="article", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def topic_names(self) -> list[str]:
        return sorted(t.topic for t in self.topics)


class ArticleTopic(Base):
    __tablename__ = "article_topics"

    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    # Topic tagging (issue 10): the rule's score and why it gave the tag (TopicMatch.to_dict()).
    score: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[dict | None] = mapped_column(JSON)

    article: Mapped[Article] = relationship(back_populates="topics")


class ArticleUrl(Base):
    """Every URL under which an article was seen (feed links, redirects, exact copies).

    Lets a second pass skip known links without fetching, and keeps the provenance of exact
    copies that were folded into one row.
    """

    __tablename__ = "article_urls"

    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), index=True)
    feed_id: Mapped[int | None] = mapped_column(ForeignKey("feeds.id", ondelete="SET NULL"))
    relation: Mapped[str] = mapped_column(String(20))  # canonical | link | redirect | exact-copy
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxEntry(Base):
    """Articles whose search document must be (re)sent; written in the article's transaction."""

    __tablename__ = "index_outbox"
    __table_args__ = (Index("ix_index_outbox_article", "article_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    article_id: Mapped[int] = mapped_column(IdType)
    op: Mapped[str] = mapped_column(String(10), default="upsert")  # upsert | delete
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


# --------------------------------------------------------------------------------------------
# Digest: saved searches, subscriptions and delivery records (monitor/digest/)
# --------------------------------------------------------------------------------------------

from datetime import date as _date  # noqa: E402  (kept with the digest models it serves)

from sqlalchemy import Date, UniqueConstraint  # noqa: E402


class SavedSearch(Base):
    """A named query with filters, saved from the web UI's search page or the CLI."""

    __tablename__ = "saved_searches"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    query: Mapped[str] = mapped_column(Text, default="")
    topics: Mapped[list] = mapped_column(JSON, default=list)
    sources: Mapped[list] = mapped_column(JSON, default=list)
    languages: Mapped[list] = mapped_column(JSON, default=list)
    owner: Mapped[str | None] = mapped_column(String(320))  # web user or e-mail that saved it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(Base):
    """An e-mail address receiving the daily digest of one saved search at an hour in a time zone.

    state: pending (waiting for the opt-in link) | active | paused | unsubscribed.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("email", "saved_search_id", name="uq_subscriptions_email_search"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    saved_search_id: Mapped[int] = mapped_column(ForeignKey("saved_searches.id", ondelete="CASCADE"), index=True)
    send_hour: Mapped[int] = mapped_column(Integer, default=7)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    state: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    send_empty: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # confirmed or last resumed
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped on every (re)subscribe so links from an earlier subscription stop working.
    token_version: Mapped[int] = mapped_column(Integer, default=1)

    saved_search: Mapped[SavedSearch] = relationship(lazy="joined")


class Delivery(Base):
    """One digest for one subscription and one local day: the exactly-once record.

    The unique (subscription_id, local_day) key is the claim: whoever inserts the row owns that
    day's digest. state: claimed | sending | sent | empty | retry | failed | uncertain | superseded.
    """

    __tablename__ = "digest_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "local_day", name="uq_digest_deliveries_sub_day"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True)
    local_day: Mapped[_date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(20), index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str] = mapped_column(String(300))
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    story_count: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sending_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# -- ops: index dead letters -----------------------------------------------------------------


class IndexDeadLetter(Base):
    """An outbox entry the search backend kept rejecting: parked here with its error.

    `newsmon status` lists them; `newsmon index --retry-dead` puts them back in the outbox.
    """

    __tablename__ = "index_dead_letters"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    article_id: Mapped[int] = mapped_column(IdType, index=True)
    op: Mapped[str] = mapped_column(String(10))  # upsert | delete
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dead_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text)


class ArticlePage(Base):
    """The raw HTML of the page an article's text was extracted from, kept NEWSMON_KEEP_HTML_DAYS
    days for re-extraction (`newsmon extract --article ID`); `newsmon prune` deletes older rows.
    Unsanitised: never render it."""

    __tablename__ = "article_pages"

    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    html: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


# --------------------------------------------------------------------------------------------
# Web UI (monitor/web): accounts for the admin pages and the require-login setting
# --------------------------------------------------------------------------------------------


class User(Base):
    """A web account; the password is stored as a salted scrypt hash, never in clear."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --------------------------------------------------------------------------------------------
# Topics: `newsmon retag` checkpoints (issue 10)
# --------------------------------------------------------------------------------------------


class RetagCheckpoint(Base):
    """How far a retag run with one rule set (and --since) got, so a killed run continues."""

    __tablename__ = "retag_checkpoints"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)  # rules fingerprint + since
    last_article_id: Mapped[int] = mapped_column(IdType, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    skipped_newer: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# -- clustering (engine <-> database coordination) ------------------------------------------


class ClusterState(Base):
    """One row: the clustering generation, bumped by `recluster` so running workers rebuild their engine."""

    __tablename__ = "cluster_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
