"""`newsmon recluster`: recompute duplicates and stories with the current settings.

Articles before `since` keep their decisions and only seed the engine (restore); articles from
`since` on are clustered again in the order they were stored (the order a live worker decided
them, so reclustering with unchanged settings reproduces the live result), their rows updated
and queued for the search index. Stories left without members are removed.

Live ingest waits meanwhile: the whole run holds the clustering lock that every clustered save
takes, and the clustering generation is bumped before the lock is released, so running workers
rebuild their engine from the reclustered decisions before their next article.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, select
from tqdm import tqdm

from monitor.clustering.store import apply_decision, bump_generation, clustering_lock, stored_decision, to_item
from monitor.storage.db import Database
from monitor.storage.models import Article, Story
from monitor.clustering.engine import ClusterSettings, StoryEngine
from monitor.storage.articles import enqueue_index, refresh_story

BATCH = 200


def recluster_articles(db: Database, *, since: date | None = None, settings: ClusterSettings | None = None,
                       progress: bool = False) -> int:
    """Recluster (see the module docstring); returns how many articles were decided again."""
    with clustering_lock(db):
        return _recluster(db, since, settings or ClusterSettings(), progress)


def _recluster(db: Database, since: date | None, settings: ClusterSettings, progress: bool) -> int:
    engine = StoryEngine(settings)
    start = datetime.combine(since, time(0), tzinfo=timezone.utc) if since else None
    when = func.coalesce(Article.published_at, Article.fetched_at)
    with db.session() as s:
        if start is not None:
            seed_from = start - timedelta(days=settings.window_days or 3650)
            for a in s.scalars(select(Article).where(when >= seed_from, when < start).order_by(Article.id)):
                if a.story_id is not None:
                    engine.restore(to_item(a), stored_decision(a))
        query = select(Article.id).order_by(Article.id)
        if start is not None:
            query = query.where(when >= start)
        ids = list(s.scalars(query))
        # Detach the articles from their old decisions first, so a story can be re-founded
        # by a different member without foreign keys pointing at stale rows.
        touched: set[int] = set()
        for chunk in _chunks(ids, BATCH):
            for a in s.scalars(select(Article).where(Article.id.in_(chunk))):
                if a.story_id is not None:
                    touched.add(a.story_id)
                a.duplicate_of = None
                a.story_id = None
        s.flush()
    done = 0
    with tqdm(total=len(ids), unit="article", desc="recluster", disable=not progress, file=sys.stderr) as bar:
        for chunk in _chunks(ids, BATCH):
            with db.session() as s:
                articles = {a.id: a for a in s.scalars(select(Article).where(Article.id.in_(chunk)))}
                for aid in chunk:
                    article = articles[aid]
                    decision = engine.add(to_item(article))
                    apply_decision(s, article, decision)
                    touched.add(int(decision.story_id))
                    for member_id in decision.rerooted:
                        member, updated = s.get(Article, int(member_id)), engine.decision_of(member_id)
                        if member is not None and updated is not None:
                            apply_decision(s, member, updated)
                    enqueue_index(s, article.id)
                    done += 1
            bar.update(len(chunk))
    with db.session() as s:
        for story_id in sorted(touched):  # exact counters for every story that gained or lost members
            refresh_story(s, story_id)
        s.flush()
        empty = select(Story.id).where(~select(Article.id).where(Article.story_id == Story.id).exists())
        for sid in list(s.scalars(empty)):
            s.delete(s.get(Story, sid))
        bump_generation(s)
    return done


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]
