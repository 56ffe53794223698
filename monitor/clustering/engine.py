"""The clustering engine: copy detection + story assignment for one article at a time.

One job: combine `copies.NearDupIndex` and `stories.StoryIndex` into an
incremental, idempotent, restartable engine over plain data. No database, no
network: the pipeline stores the decisions and feeds them back through
`restore` on restart.

Time: an article without a `published` date is placed at the latest time the
engine has seen (it is news arriving now); before any dated article it has no
time at all, gets no time penalty and is only evicted by an explicit
`evict_before`. The engine evicts, by article time only (never the wall
clock), state older than `window_days` before the latest time seen, at
whole-hour cut-offs: the state is then a function of the window's articles, so
a process rebuilt from the database holds what a process that never stopped
holds.

Idempotency: `add` with an id already decided returns the stored decision as
long as that article is inside the window; older re-deliveries are the
pipeline's to answer from the database.

Restart: `restore` re-indexes a stored article under its stored decision (the
features are recomputed from the text, the decision is not). Restoring the
window's articles in the order they were decided reproduces the running
engine's state: the IDF counts the window's articles only.
"""

from __future__ import annotations

import heapq
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from enum import StrEnum

from monitor.clustering.copies import (CopyFeatures, CopyMatch, DuplicateMethod, NearDupIndex, banding, copy_features,
                                      paragraph_tokens)
from monitor.clustering.settings import ClusterSettings
from monitor.clustering.stories import StoryIndex, story_features
from monitor.stages.textnorm import content_hash, straighten

__all__ = ["ArticleFeatures", "ClusterDecision", "ClusterItem", "ClusterSettings", "DuplicateMethod",
           "StoryEngine", "StoryMethod", "compute_features"]

_EVICT_STEP = 3600.0   # seconds: eviction cut-offs are whole hours of article time


class StoryMethod(StrEnum):
    """Why an article is in its story."""

    NEW_STORY = "new-story"                     # nothing recent was similar enough: it opens a story
    SIMILARITY = "similarity"                   # similar to the story's centroid
    COPY_OF_MEMBER = "copy-of-member"           # a copy of an article of the story
    ORIGINAL_OF_COPIES = "original-of-copies"   # an earlier original of copies already in the story


@dataclass
class ClusterItem:
    id: str
    url: str
    source: str
    title: str
    text: str
    published: datetime | None   # UTC aware; naive is taken as UTC; None allowed


@dataclass(slots=True)
class ClusterDecision:
    id: str
    duplicate_of: str | None
    duplicate_score: float | None
    duplicate_method: DuplicateMethod | None
    story_id: str                    # id of the story's first article (new story -> own id)
    story_score: float | None
    story_method: StoryMethod
    explanation: dict = field(default_factory=dict)
    # Articles that were the root of this copy group until this (earlier-published) article
    # arrived; they and their copies are now copies of this one.
    rerooted: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.story_method = StoryMethod(self.story_method)
        if self.duplicate_method is not None:
            self.duplicate_method = DuplicateMethod(self.duplicate_method)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["story_method"] = str(self.story_method)
        d["duplicate_method"] = None if self.duplicate_method is None else str(self.duplicate_method)
        return d


# The engine remembers every decision of its window; their explanations (nested dicts and
# lists, ~1.5 KB of objects each) are kept as compact JSON text and decoded on the way out.
def _compact(decision: ClusterDecision) -> ClusterDecision:
    if isinstance(decision.explanation, str):
        return decision
    return replace(decision, explanation=json.dumps(decision.explanation, separators=(",", ":")))


def _expanded(decision: ClusterDecision) -> ClusterDecision:
    if not isinstance(decision.explanation, str):
        return decision
    return replace(decision, explanation=json.loads(decision.explanation))


@dataclass(slots=True)
class ArticleFeatures:
    """What the engine needs from one article's text (pure: computed in extraction processes)."""

    copy: CopyFeatures
    story: dict[str, float]


Features = ArticleFeatures   # the name the pipeline imports


def _ts(dt: datetime | None) -> float | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()




def compute_features(title: str, text: str, settings: ClusterSettings) -> ArticleFeatures:
    """Copy-detection and story features of one article: pure, so it can run in a worker process."""
    s = settings
    text = text or ""
    capped = text[: s.max_text_chars]
    # NFKC + straight quotes once, shared by both feature sets.
    straight = straighten(capped)
    # Each paragraph is tokenised once, for both feature sets.
    para_tokens = paragraph_tokens(straight)
    cfeat = copy_features(straight, shingle_size=s.shingle_size, head_words=s.head_words, straightened=True,
                          para_tokens=para_tokens)
    # The exact hash is over the whole text: two 5 MB texts that differ after
    # the cap are not the same text.
    if len(text) > s.max_text_chars:
        cfeat.hash = content_hash(text)
    # LSH keys too: in an extraction process this takes the MinHash work off the storing process.
    banding(s.num_perm, s.lsh_threshold).keys(cfeat)
    tf = story_features(title or "", straight, lead_words=s.lead_words, max_words=s.max_story_words,
                        zone_weights=s.zone_weights, straightened=True, para_tokens=para_tokens)
    return ArticleFeatures(cfeat, tf)


class StoryEngine:
    """Incremental dedup + story clustering; see the module docstring for time handling."""

    def __init__(self, settings: ClusterSettings | None = None):
        self.settings = s = settings or ClusterSettings()
        self._dedup = NearDupIndex(num_perm=s.num_perm, lsh_threshold=s.lsh_threshold,
                                   min_words=s.min_words_copy, containment_threshold=s.containment_threshold,
                                   paragraph_threshold=s.paragraph_threshold)
        self._stories = StoryIndex(s)
        self._decisions: dict[str, tuple[float, ClusterDecision]] = {}
        self._expiry: list[tuple[float, str]] = []
        self._latest: float | None = None
        self._evicted_to: float | None = None

    def _time(self, item: ClusterItem) -> float | None:
        ts = _ts(item.published)
        if ts is None:
            return self._latest
        return ts

    def _remember(self, decision: ClusterDecision, ts: float | None) -> None:
        # Undated articles before any dated one sit at time 0 in every index, so
        # they leave together at the first eviction.
        key = ts if ts is not None else 0.0
        self._decisions[decision.id] = (key, _compact(decision))
        heapq.heappush(self._expiry, (key, decision.id))
        if ts is not None and (self._latest is None or ts > self._latest):
            self._latest = ts
            self._auto_evict()
        elif self._evicted_to is not None and key < self._evicted_to:
            # Older than the window already: a rebuilt engine would not hold it, so neither do we.
            self.evict_before(self._evicted_to)

    def _auto_evict(self) -> None:
        # Cut-offs on whole hours of article time: eviction walks heaps (per article would be
        # wasted work), and the state after any article depends on article times only.
        if not self.settings.window_days:
            return
        cutoff = (self._latest - self.settings.window_days * 86400.0) // _EVICT_STEP * _EVICT_STEP
        if self._evicted_to is None or cutoff > self._evicted_to:
            self.evict_before(cutoff)

    # -- public API -----------------------------------------------------------
    def add(self, item: ClusterItem, features: ArticleFeatures | None = None) -> ClusterDecision:
        """Decide copy/story for a new article; the same id again returns the same decision.

        `features` may be passed in when `compute_features(item.title, item.text, settings)`
        was already run elsewhere (the pipeline does it in its extraction processes).
        """
        known = self._decisions.get(item.id)
        if known is not None:
            return _expanded(known[1])
        ts = self._time(item)
        tkey = ts if ts is not None else 0.0
        feats = features or compute_features(item.title, item.text, self.settings)
        match = self._dedup.find(feats.copy)
        story_of_root = None
        if match is not None:
            root_dec = self._decisions.get(match.root) or self._decisions.get(match.matched)
            story_of_root = root_dec[1].story_id if root_dec else None
        if match is not None and story_of_root is not None and self._is_earlier(tkey, match.root):
            decision = self._reroot(item, match, story_of_root, feats, tkey)
        elif match is not None and story_of_root is not None:
            self._dedup.add(item.id, feats.copy, match.root, tkey)
            # A copy adds nothing to what its story is about; it only keeps the story alive.
            self._stories.touch(story_of_root, tkey)
            decision = ClusterDecision(
                id=item.id, duplicate_of=match.root, duplicate_score=match.score,
                duplicate_method=match.method, story_id=story_of_root, story_score=match.score,
                story_method=StoryMethod.COPY_OF_MEMBER,
                explanation={"copy": match.to_dict(), "story": "same story as its original"},
            )
        else:
            decision = self._place(item, feats, match, ts, tkey)
        self._remember(decision, ts)
        return decision

    def _place(self, item: ClusterItem, feats: ArticleFeatures, match: CopyMatch | None,
               ts: float | None, tkey: float) -> ClusterDecision:
        """An original (or a copy whose original's story is gone): join the best story or open one."""
        enc = self._stories.learn(item.id, feats.story)
        vec = self._stories.vector(enc)
        res = self._stories.assign(enc, ts, vec)
        sid = self._stories.add(item.id, enc, tkey, res.story_id, vec)
        self._dedup.add(item.id, feats.copy, match.root if match else None, tkey)
        shared = [{"feature": k, "weight": round(w, 4)} for k, w in res.shared]
        threshold = self.settings.story_threshold
        if res.story_id is None:
            method, score = StoryMethod.NEW_STORY, None
            expl = {"story": "no recent story above the threshold", "threshold": threshold,
                    "nearest_story": res.nearest,
                    "nearest_score": None if res.score is None else round(res.score, 4),
                    "shared_with_nearest": shared}
        else:
            method, score = StoryMethod.SIMILARITY, round(res.score, 4)
            expl = {"story": "similar to the story's centroid", "cosine": round(res.cosine, 4),
                    "time_factor": round(res.time_factor, 4), "threshold": threshold, "shared": shared}
        if match is not None:
            expl["copy"] = match.to_dict()
        return ClusterDecision(
            id=item.id,
            duplicate_of=match.root if match else None,
            duplicate_score=match.score if match else None,
            duplicate_method=match.method if match else None,
            story_id=sid, story_score=score, story_method=method, explanation=expl,
        )

    def _is_earlier(self, tkey: float, root_id: str) -> bool:
        known = self._decisions.get(root_id)
        return known is not None and tkey < known[0]

    def _reroot(self, item: ClusterItem, match: CopyMatch, story_id: str, feats: ArticleFeatures,
                tkey: float) -> ClusterDecision:
        """The new article is an earlier copy of a group's root: it becomes the original.

        Pages arrive in any order (fetches finish when they finish, feeds are polled at different
        times), but the original is the earliest published. The old root becomes a copy, so it
        leaves its story's centroid and the IDF, as a restarted engine would never have had it there.
        """
        old_root = match.root
        members = self._dedup.reroot(old_root, item.id)
        old_time = self._decisions[old_root][0]
        self._stories.remove_member(story_id, old_root, old_time)
        self._stories.unlearn(old_root)
        self._dedup.add(item.id, feats.copy, None, tkey)
        enc = self._stories.learn(item.id, feats.story)
        self._stories.add(item.id, enc, tkey, story_id)
        copy_expl = match.to_dict()
        for member in members:
            stamp, old = self._decisions[member] if member in self._decisions else (None, None)
            if old is None:
                continue
            changed = dict(duplicate_of=item.id, story_method=StoryMethod.COPY_OF_MEMBER)
            if member == old_root:
                changed.update(duplicate_score=match.score, duplicate_method=match.method,
                               story_score=match.score,
                               explanation={"copy": dict(copy_expl, root=item.id), "story": "same story as its original"})
            self._decisions[member] = (stamp, _compact(replace(old, **changed)))
        return ClusterDecision(
            id=item.id, duplicate_of=None, duplicate_score=None, duplicate_method=None,
            story_id=story_id, story_score=match.score, story_method=StoryMethod.ORIGINAL_OF_COPIES,
            explanation={"story": "earlier original of copies already in the story", "copy": copy_expl},
            rerooted=sorted(members),
        )

    def decision_of(self, item_id: str) -> ClusterDecision | None:
        known = self._decisions.get(item_id)
        return _expanded(known[1]) if known else None

    def restore(self, item: ClusterItem, decision: ClusterDecision,
                features: ArticleFeatures | None = None) -> None:
        """Rebuild in-memory state for a stored article and its stored decision (no re-deciding)."""
        if item.id in self._decisions:
            return
        ts = self._time(item)
        tkey = ts if ts is not None else 0.0
        feats = features or compute_features(item.title, item.text, self.settings)
        self._dedup.add(item.id, feats.copy, decision.duplicate_of, tkey)
        if decision.story_method == StoryMethod.COPY_OF_MEMBER:
            self._stories.touch(decision.story_id, tkey)
        else:
            enc = self._stories.learn(item.id, feats.story)
            self._stories.add(item.id, enc, tkey, decision.story_id)
        self._remember(decision, ts)

    def restore_counts(self, item: ClusterItem) -> None:
        """Count a stored original older than the window in the IDF only (it is among the latest `idf_docs`)."""
        s = self.settings
        straight = straighten((item.text or "")[: s.max_text_chars])
        tf = story_features(item.title or "", straight, lead_words=s.lead_words, max_words=s.max_story_words,
                            zone_weights=s.zone_weights, straightened=True)
        self._stories.learn(item.id, tf)

    def evict_before(self, t: datetime | float) -> None:
        """Drop copies index entries, stories and remembered decisions older than `t` (article time)."""
        ts = _ts(t) if isinstance(t, datetime) else float(t)
        self._dedup.evict_before(ts)
        self._stories.evict_before(ts)
        while self._expiry and self._expiry[0][0] < ts:
            _, item_id = heapq.heappop(self._expiry)
            self._decisions.pop(item_id, None)
        self._evicted_to = ts if self._evicted_to is None else max(self._evicted_to, ts)

    def stats(self) -> dict:
        return {"decisions": len(self._decisions), "copy_index": len(self._dedup), "stories": len(self._stories),
                "vocabulary": len(self._stories.vocab)}

    def fingerprint(self) -> dict:
        """A comparable summary of the whole state (tests: a rebuilt engine must equal the live one)."""
        stories = self._stories
        return {
            "decisions": sorted((i, d.duplicate_of, d.story_id, str(d.story_method))
                                for i, (_, d) in self._decisions.items()),
            "copies": sorted((i, e.root, e.slot is not None) for i, e in self._dedup._entries.items()),
            "stories": sorted((sid, tuple(m for m, _ in st.members), tuple(st.times))
                              for sid, st in stories._stories.items()),
            "idf_docs": stories.vocab.n,
            "df": sorted((name, float(stories.vocab.df[i])) for name, i in stories.vocab.ids.items()
                         if stories.vocab.df[i]),
            "latest": self._latest,
            "evicted_to": self._evicted_to,
        }
