"""Storing articles: exact-duplicate folding, URL aliases, cluster decisions and the index outbox.

Everything an article brings — its row, URLs, topics, story and the outbox entry for the search
index — goes into the caller's transaction, written together or not at all. Re-saving an
article that is already known (same canonical URL, a known alias, or the same normalised text)
updates the existing row instead of adding a new one, so re-running any feed is harmless.

`save_articles` stores a batch in one transaction with a handful of statements (two `IN`
lookups, one id draw, one executemany INSERT per table), deciding each candidate exactly as
`save_article` called on them one after the other would: a later copy of a URL seen earlier
in the batch is a duplicate (or an update), a later same-text copy folds into the first.
With a clusterer, `save_article` is a batch of one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.storage.models import Article, ArticlePage, ArticleTopic, ArticleUrl, OutboxEntry, Story, utcnow
from monitor.stages.urls import safe_canonical

# Below this much text a hash match says little (two empty or one-line bodies).
MIN_TEXT_FOR_HASH = 200
TEXT_SOURCE_RANK = {"page": 3, "feed-content": 2, "feed-summary": 1, "title": 0}


@dataclass
class ArticleCandidate:
    """An article as the pipeline assembled it, before we know whether it is new."""

    canonical_url: str
    url: str  # the address the stored text was read from
    title: str
    text: str
    text_source: Literal["page", "feed-content", "feed-summary", "title"]
    content_hash: str
    source: str
    aliases: list[str] = field(default_factory=list)  # other canonicalised URLs (feed link, redirects)
    feed_id: int | None = None
    guid: str | None = None
    html: str | None = None
    summary: str | None = None
    page_html: str | None = None  # the raw page the text came from, kept for re-extraction
    published_at: datetime | None = None
    language: str | None = None
    author: str | None = None
    site_name: str | None = None
    topics: list[str] = field(default_factory=list)
    # topic -> (score, explanation) from the tagger; stored beside each tag.
    topic_details: dict[str, tuple[float, dict]] = field(default_factory=dict)


@dataclass(frozen=True)
class SaveOutcome:
    article_id: int
    status: Literal["new", "updated", "duplicate-url", "duplicate-hash"]


def known_urls(session: Session, urls) -> set[str]:
    """Which of these URLs an article is stored under (one query per 500 URLs)."""
    found: set[str] = set()
    for chunk in _chunks(sorted({u for u in urls if u}), 500):
        found.update(session.scalars(select(ArticleUrl.url).where(ArticleUrl.url.in_(chunk))))
    return found


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _add_aliases(session: Session, article_id: int, urls: list[tuple[str, str]], feed_id: int | None,
                 *, all_new: bool = False) -> None:
    """Record the URLs under which an article was seen (`all_new`: none of them is known yet)."""
    urls = [(u, r) for u, r in dict(urls).items() if u]
    if not all_new and urls:
        known = set(session.scalars(select(ArticleUrl.url).where(ArticleUrl.url.in_([u for u, _ in urls]))))
        urls = [(u, r) for u, r in urls if u not in known]
    session.add_all([ArticleUrl(url=url, article_id=article_id, feed_id=feed_id, relation=relation)
                     for url, relation in urls])


def enqueue_index(session: Session, article_id: int, op: str = "upsert") -> None:
    session.add(OutboxEntry(article_id=article_id, op=op))


def _candidate_urls(cand: ArticleCandidate) -> list[tuple[str, str]]:
    urls = [(cand.canonical_url, "canonical")]
    fetched = safe_canonical(cand.url)
    if fetched and fetched != cand.canonical_url:
        urls.append((fetched, "redirect"))
    urls += [(a, "link") for a in cand.aliases if a and a != cand.canonical_url and a != fetched]
    return urls


def _is_self_canonical(article: Article) -> bool:
    return safe_canonical(article.url) == article.canonical_url


def _should_replace(existing: Article, cand: ArticleCandidate) -> bool:
    """Replace stored text only with better text: a real page over a feed summary, or the
    canonical page itself over a syndicated copy that pointed at it."""
    if TEXT_SOURCE_RANK[cand.text_source] > TEXT_SOURCE_RANK.get(existing.text_source, 0):
        return True
    cand_self = safe_canonical(cand.url) == cand.canonical_url
    return cand.text_source == "page" and cand_self and not _is_self_canonical(existing)


def _candidate_fields(cand: ArticleCandidate, current, now: datetime) -> dict:
    """The columns a candidate sets on an article; `current(name)` gives the value kept where the
    candidate has none (language, author, site name) and the first publication date."""
    return dict(url=cand.url, title=cand.title, text=cand.text, html=cand.html, summary=cand.summary,
                text_source=cand.text_source, content_hash=cand.content_hash, source=cand.source,
                language=cand.language or current("language"), author=cand.author or current("author"),
                site_name=cand.site_name or current("site_name"),
                published_at=current("published_at") or cand.published_at, updated_at=now)


def _apply_fields(article: Article, cand: ArticleCandidate) -> None:
    for name, value in _candidate_fields(cand, lambda name: getattr(article, name), utcnow()).items():
        setattr(article, name, value)


def existing_lookups(cand: ArticleCandidate) -> list:
    """Scalar subqueries: the article stored under one of the candidate's URLs; the first with its text."""
    # Every stored article's canonical URL is one of its ArticleUrl rows, so one lookup covers
    # the canonical URL, the feed link and the redirect target.
    urls = [u for u, _ in _candidate_urls(cand)]
    lookups = [select(ArticleUrl.article_id).where(ArticleUrl.url.in_(urls)).limit(1).scalar_subquery()]
    if len(cand.text) >= MIN_TEXT_FOR_HASH:
        lookups.append(select(Article.id).where(Article.content_hash == cand.content_hash)
                       .order_by(Article.id).limit(1).scalar_subquery())
    return lookups


def _resolve(session: Session, found: tuple) -> tuple[Article | None, str]:
    url_id, hash_id = (tuple(found) + (None,))[:2]
    if url_id is not None:
        return session.get(Article, url_id), "duplicate-url"
    if hash_id is not None:
        return session.get(Article, hash_id), "duplicate-hash"
    return None, "new"


def find_existing(session: Session, cand: ArticleCandidate) -> tuple[Article | None, str]:
    """The stored article this candidate is (by any of its URLs, else by its text), in one query."""
    return _resolve(session, session.execute(select(*existing_lookups(cand))).one())


def save_article(session: Session, cand: ArticleCandidate, clusterer=None) -> SaveOutcome:
    """Insert or update one article in the caller's transaction (see module docstring).

    `clusterer` (a `monitor.clustering.store.Clusterer`) decides duplicate_of / story for new
    articles; it takes the clustering lock first, so the lookup and the insert below cannot race
    another clustering writer, and the decision goes into the article's INSERT.
    """
    if clusterer is not None:
        return save_articles(session, [cand], clusterer)[0]
    existing, how = find_existing(session, cand)
    if existing is not None:
        urls = _candidate_urls(cand)
        if how == "duplicate-hash":
            urls = [(u, "exact-copy") for u, _ in urls]
        _add_aliases(session, existing.id, urls, cand.feed_id)
        if how == "duplicate-url" and _should_replace(existing, cand):
            _apply_fields(existing, cand)
            _keep_page(session, existing.id, cand)
            set_topics(session, existing, cand.topics, cand.topic_details)
            enqueue_index(session, existing.id)
            return SaveOutcome(existing.id, "updated")
        return SaveOutcome(existing.id, how)

    article = Article(
        canonical_url=cand.canonical_url,
        url=cand.url,
        feed_id=cand.feed_id,
        guid=cand.guid,
        fetched_at=utcnow(),
    )
    _apply_fields(article, cand)
    session.add(article)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # Another writer stored the same canonical URL between our lookup and insert.
        session.expunge(article)
        existing = session.scalar(select(Article).where(Article.canonical_url == cand.canonical_url))
        if existing is None:
            raise
        _add_aliases(session, existing.id, _candidate_urls(cand), cand.feed_id)
        return SaveOutcome(existing.id, "duplicate-url")
    _add_aliases(session, article.id, _candidate_urls(cand), cand.feed_id, all_new=True)
    _keep_page(session, article.id, cand)
    set_topics(session, article, cand.topics, cand.topic_details)
    enqueue_index(session, article.id)
    return SaveOutcome(article.id, "new")


def _keep_page(session: Session, article_id: int, cand: ArticleCandidate) -> None:
    """Keep the raw page beside the article (replacing an older one); retention prunes it."""
    if cand.page_html is None:
        return
    page = session.get(ArticlePage, article_id)
    if page is None:
        session.add(ArticlePage(article_id=article_id, url=cand.url[:2048], html=cand.page_html, fetched_at=utcnow()))
    else:
        page.url, page.html, page.fetched_at = cand.url[:2048], cand.page_html, utcnow()


def set_topics(session: Session, article: Article, topics: list[str],
               details: dict[str, tuple[float, dict]] | None = None) -> bool:
    """Make the article's tags exactly `topics`, with score and explanation; True if the names changed."""
    details = details or {}
    wanted = set(topics)
    before = {t.topic for t in article.topics}
    for t in list(article.topics):
        if t.topic not in wanted:
            article.topics.remove(t)
    for t in article.topics:
        if t.topic in details:
            t.score, t.explanation = details[t.topic]
    for name in sorted(wanted - before):
        score, explanation = details.get(name, (None, None))
        article.topics.append(ArticleTopic(topic=name, score=score, explanation=explanation))
    return before != wanted


def story_row(session: Session, story_id: int, headline: str) -> Story:
    """The story's row, created (and flushed, for the articles' foreign key) on first use.

    A story's id is its first article's id, which also makes that article its headline.
    """
    story = session.get(Story, story_id)
    if story is None:
        story = Story(id=story_id, headline=headline, headline_article_id=story_id, article_count=0, source_count=0)
        session.add(story)
        session.flush()
    return story


def refresh_story(session: Session, story_id: int) -> Story:
    """Recount a story's counters from its member articles (after members moved)."""
    story = session.get(Story, story_id)
    session.flush()
    count, sources, first, last = session.execute(
        select(
            func.count(Article.id),
            func.count(func.distinct(Article.source)),
            func.min(Article.published_at),
            func.max(Article.fetched_at),
        ).where(Article.story_id == story_id)
    ).one()
    story.article_count = count
    story.source_count = sources
    story.first_seen = first or story.first_seen
    story.last_updated = last or utcnow()
    return story


def save_articles(session: Session, candidates: list[ArticleCandidate], clusterer=None) -> list[SaveOutcome]:
    """Store many candidates in the caller's transaction; outcome i is what `save_article` on
    candidate i, after those before it, would have returned and stored.

    With a clusterer: one clustering lock, two lookups and one id draw for the whole batch, one
    executemany INSERT per table; the engine decides the new articles in order (if the
    transaction does not commit, it is rebuilt from the database before the next save).
    """
    if clusterer is None:
        return [save_article(session, cand) for cand in candidates]
    if not candidates:
        return []
    return _Batch(session, clusterer).save(candidates)


@dataclass
class _Known:
    """What deciding "replace the stored text?" needs of an article (stored or new in the batch)."""

    text_source: str
    url: str
    canonical_url: str
    content_hash: str


def _merged_topics(before: dict[str, tuple], topics: list[str], details: dict[str, tuple[float, dict]]) -> dict[str, tuple]:
    """`set_topics` on an article not written yet: exactly `topics`, kept tags keep their score unless given a new one."""
    out = {}
    for name in sorted(set(topics)):
        out[name] = details[name] if name in details else before.get(name, (None, None))
    return out


_STORIES = Story.__table__
_JOINED = (
    update(_STORIES).where(_STORIES.c.id == bindparam("b_sid"))
    .values(article_count=_STORIES.c.article_count + bindparam("b_k"),
            # Recounted once the batch's articles are in: a source is new only if no member has it.
            source_count=select(func.count(func.distinct(Article.source)))
            .where(Article.story_id == _STORIES.c.id).scalar_subquery(),
            first_seen=case((_STORIES.c.first_seen.is_(None), bindparam("b_pub", type_=_STORIES.c.first_seen.type)),
                            (bindparam("b_pub", type_=_STORIES.c.first_seen.type) < _STORIES.c.first_seen,
                             bindparam("b_pub", type_=_STORIES.c.first_seen.type)),
                            else_=_STORIES.c.first_seen),
            last_updated=bindparam("b_now", type_=_STORIES.c.last_updated.type))
)


class _Batch:
    """One `save_articles` call with a clusterer: lookups once, decisions in memory, rows written at the end."""

    def __init__(self, session: Session, clusterer) -> None:
        self.s = session
        self.clusterer = clusterer
        self.url_owner: dict[str, int] = {}       # every URL of the batch known so far -> its article
        self.known: dict[int, _Known] = {}
        self.hash_ids: dict[str, set[int]] = defaultdict(set)  # content hash -> articles with it
        self._pending()

    def _pending(self) -> None:
        self.articles: list[dict] = []             # new rows, in id order
        self.rows: dict[int, dict] = {}            # id -> its row, while not written yet
        self.new_stories: dict[int, dict] = {}
        self.story_sources: dict[int, set[str]] = {}
        self.joined: dict[int, list] = {}          # stored story -> [articles joining, earliest date]
        self.urls: list[dict] = []
        self.topics: dict[int, dict[str, tuple]] = {}
        self.pages: dict[int, dict] = {}
        self.outbox: list[int] = []

    # -- deciding ------------------------------------------------------------------------------

    def save(self, candidates: list[ArticleCandidate]) -> list[SaveOutcome]:
        s = self.s
        self.clusterer.begin(s)
        all_urls = [_candidate_urls(c) for c in candidates]
        for chunk in _chunks(sorted({u for urls in all_urls for u, _ in urls if u}), 500):
            rows = s.execute(select(ArticleUrl.url, ArticleUrl.article_id, Article.text_source, Article.url,
                                    Article.canonical_url, Article.content_hash)
                             .join(Article, Article.id == ArticleUrl.article_id).where(ArticleUrl.url.in_(chunk)))
            for url, aid, source, aurl, canonical, chash in rows:
                self.url_owner[url] = aid
                self.known.setdefault(aid, _Known(source, aurl, canonical, chash))
        for chunk in _chunks(sorted({c.content_hash for c in candidates}), 500):
            for aid, chash in s.execute(select(Article.id, Article.content_hash).where(Article.content_hash.in_(chunk))):
                self.hash_ids[chash].add(aid)
        # One draw for the candidates the database does not know; ids of those that turn out to
        # repeat an earlier one of the batch stay unused (PostgreSQL sequences have gaps, SQLite
        # reuses them), and more are drawn should an update free a stored hash (rare).
        unknown = sum(1 for cand, urls in zip(candidates, all_urls)
                      if not any(u in self.url_owner for u, _ in urls)
                      and not (len(cand.text) >= MIN_TEXT_FOR_HASH and self.hash_ids.get(cand.content_hash)))
        self.ids = self.clusterer.draw_ids(s, unknown)[::-1]
        outcomes = [self._one(cand, urls) for cand, urls in zip(candidates, all_urls)]
        self._write()
        return outcomes

    def _one(self, cand: ArticleCandidate, urls: list[tuple[str, str]]) -> SaveOutcome:
        owner = next((self.url_owner[u] for u, _ in urls if u in self.url_owner), None)
        if owner is not None:
            self._aliases(owner, urls, cand.feed_id)
            if _should_replace(self.known[owner], cand):
                self._update(owner, cand)
                return SaveOutcome(owner, "updated")
            return SaveOutcome(owner, "duplicate-url")
        if len(cand.text) >= MIN_TEXT_FOR_HASH and self.hash_ids.get(cand.content_hash):
            original = min(self.hash_ids[cand.content_hash])
            self._aliases(original, [(u, "exact-copy") for u, _ in urls], cand.feed_id)
            return SaveOutcome(original, "duplicate-hash")
        return SaveOutcome(self._new(cand, urls), "new")

    def _aliases(self, article_id: int, urls: list[tuple[str, str]], feed_id: int | None) -> None:
        for url, relation in dict(urls).items():
            if url and url not in self.url_owner:
                self.url_owner[url] = article_id
                self.urls.append(dict(url=url, article_id=article_id, feed_id=feed_id, relation=relation,
                                      first_seen=utcnow()))

    def _new(self, cand: ArticleCandidate, urls: list[tuple[str, str]]) -> int:
        from monitor.clustering.engine import ClusterItem
        from monitor.clustering.store import decision_fields

        aid = self.ids.pop() if self.ids else self.clusterer.draw_ids(self.s, 1)[0]
        now = utcnow()
        row = dict(id=aid, canonical_url=cand.canonical_url, url=cand.url, feed_id=cand.feed_id, guid=cand.guid,
                   fetched_at=now, published_at=None, language=None, author=None, site_name=None)
        _apply_row(row, cand, now)
        item = ClusterItem(id=str(aid), url=cand.canonical_url, source=cand.source, title=cand.title or "",
                           text=cand.text or "", published=cand.published_at or now)
        decision = self.clusterer.cluster(self.s, item, cand.title, cand.content_hash)
        row.update(decision_fields(decision))
        row["story_id"] = story_id = int(decision.story_id)
        self.articles.append(row)
        self.rows[aid] = row
        self.known[aid] = _Known(cand.text_source, cand.url, cand.canonical_url, cand.content_hash)
        self.hash_ids[cand.content_hash].add(aid)
        self._join_story(story_id, row)
        self.topics[aid] = _merged_topics({}, cand.topics, cand.topic_details)
        if cand.page_html is not None:
            self.pages[aid] = dict(article_id=aid, url=cand.url[:2048], html=cand.page_html, fetched_at=now)
        self._aliases(aid, urls, cand.feed_id)
        self.outbox.append(aid)
        if decision.rerooted:
            self._reroot(decision)
        return aid

    def _join_story(self, story_id: int, row: dict) -> None:
        pub, source = _utc(row["published_at"]), row["source"]
        if story_id == row["id"]:
            self.new_stories[story_id] = dict(id=story_id, headline=row["title"], headline_article_id=story_id,
                                              article_count=1, source_count=1, first_seen=pub, last_updated=utcnow())
            self.story_sources[story_id] = {source}
        elif story_id in self.new_stories:
            story = self.new_stories[story_id]
            story["article_count"] += 1
            if source not in self.story_sources[story_id]:
                self.story_sources[story_id].add(source)
                story["source_count"] += 1
            if pub is not None and (story["first_seen"] is None or story["first_seen"] > pub):
                story["first_seen"] = pub
            story["last_updated"] = utcnow()
        else:
            joined = self.joined.setdefault(story_id, [0, None])
            joined[0] += 1
            if pub is not None and (joined[1] is None or pub < joined[1]):
                joined[1] = pub

    def _update(self, article_id: int, cand: ArticleCandidate) -> None:
        """Better text for an article (stored, or new earlier in this batch)."""
        known = self.known[article_id]
        self.hash_ids[known.content_hash].discard(article_id)
        row = self.rows.get(article_id)
        if row is not None:
            _apply_row(row, cand, utcnow())
            if cand.page_html is not None:
                self.pages[article_id] = dict(article_id=article_id, url=cand.url[:2048], html=cand.page_html,
                                              fetched_at=utcnow())
            self.topics[article_id] = _merged_topics(self.topics[article_id], cand.topics, cand.topic_details)
        else:
            existing = self.s.get(Article, article_id)
            _apply_fields(existing, cand)
            _keep_page(self.s, article_id, cand)
            set_topics(self.s, existing, cand.topics, cand.topic_details)
        self.known[article_id] = _Known(cand.text_source, cand.url, known.canonical_url, cand.content_hash)
        self.hash_ids[cand.content_hash].add(article_id)
        self.outbox.append(article_id)

    def _reroot(self, decision) -> None:
        """An earlier original arrived after its copies: they now point at it (rare; done row by row)."""
        from monitor.clustering.store import apply_decision

        self._write()
        self.s.flush()
        self.s.expire_all()  # story counters were written behind the ORM's back
        for member_id in decision.rerooted:
            member = self.s.get(Article, int(member_id))
            updated = self.clusterer.engine.decision_of(member_id)
            if member is not None and updated is not None:
                apply_decision(self.s, member, updated)
                self.outbox.append(member.id)
        self.s.flush()

    # -- writing -------------------------------------------------------------------------------

    def _write(self) -> None:
        """Everything decided so far, one executemany per table, in foreign-key order."""
        s = self.s
        if self.new_stories:
            s.execute(insert(_STORIES), list(self.new_stories.values()))
        if self.articles:
            s.execute(insert(Article.__table__), self.articles)
        if self.joined:
            now = utcnow()
            s.execute(_JOINED, [dict(b_sid=sid, b_k=k, b_pub=pub, b_now=now) for sid, (k, pub) in self.joined.items()])
        if self.urls:
            s.execute(insert(ArticleUrl.__table__), self.urls)
        topics = [dict(article_id=aid, topic=name, score=score, explanation=explanation)
                  for aid, tags in self.topics.items() for name, (score, explanation) in tags.items()]
        if topics:
            s.execute(insert(ArticleTopic.__table__), topics)
        if self.pages:
            s.execute(insert(ArticlePage.__table__), list(self.pages.values()))
        if self.outbox:
            now = utcnow()
            s.execute(insert(OutboxEntry.__table__),
                      [dict(article_id=aid, op="upsert", created_at=now, attempts=0) for aid in self.outbox])
        self._pending()


def _utc(dt: datetime | None) -> datetime | None:
    """Naive is UTC (as the database columns take it), so dates of one batch compare."""
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


def _apply_row(row: dict, cand: ArticleCandidate, now: datetime) -> None:
    """`_apply_fields` on a row not written yet."""
    row.update(_candidate_fields(cand, row.get, now))
