"""Incremental story clustering: which recent story does a new article report on?

One job: keep a window of recent stories and, for each new article, pick the
best-matching story above a threshold or open a new one.

What separates "same event" from "same topic, same week" (the hard case: a
NATO ministers' meeting vs. the summit two days later, drones over Poland vs.
over Romania) is not the shared vocabulary — both share NATO, Russia, drones,
Trump — but *which* rare terms are central to both. So an article is a
weighted bag of features where

- terms are weighted by an IDF learned incrementally from the articles seen
  (copies excluded, they would dilute the IDF of syndicated wording);
- where a feature occurs matters: the headline and the lead state the event,
  later paragraphs give context ("two days before the Anchorage summit"), so
  headline and lead occurrences count several times over a body occurrence;
- capitalised phrases (people, places, bodies) and numbers (5%, 2035, $1.1bn)
  are extra features with their own weight, because write-ups of one event
  agree on who/where/how much while their wording differs.

Similarity is the cosine between an article and the *centroid* of a story
(not single-link: single-link chains a same-week neighbour through its most
similar member), damped by the time distance to the story.

Candidate stories come from an inverted index over each story's most
distinctive features, so the cost per article depends on the window, not on
the corpus size.

Representation: `story_features` returns a plain dict (it runs in worker
processes); the index interns its keys (`Vocabulary`) and keeps articles,
centroids and document frequencies as numpy arrays, so weighting and the
cosines with all candidate centroids are a few vectorised operations, and a
stored article costs ~8 bytes per feature.
"""

from __future__ import annotations

import bisect
import heapq
import math
from functools import lru_cache
import re
from collections import Counter, defaultdict

import numpy as np

from monitor.stages import textnorm

STOPWORDS = frozenset(
    """
a about above according across after afterwards again against ago ahead all almost along already also although
always am among amid an and another any anyone anything are around as at away back be became because become been
before began begin behind being below beside besides between beyond both but by came can cannot could did do does
doing done down during each either else enough especially even ever every few first for former from further get
gets getting given go goes going got had has have having he her here hers herself him himself his how however i if
in including inside instead into is it its itself just last later least less like likely made make makes many may
me meanwhile might mine more moreover most mostly much must my myself near nearly neither never nevertheless new
next no nobody none nor not nothing now of off often on once one only onto or other others otherwise our ours
ourselves out over own per perhaps put rather really said same say saying says see seem seemed seems several she
should since so some someone something sometimes still such take taken than that the their theirs them themselves
then there thereby therefore these they this those though three through throughout thus to together told too
toward towards two under until up upon us very via was we well were what whatever when whenever where whether which
while who whole whom whose why will with within without would yet you your yours yourself also s t don didn doesn
isn wasn weren won wouldn couldn shouldn ll ve re d m o y mr ms mrs dr
monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow week weeks day days month months
year years time times january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec percent cent
""".split()
)

# Capitalised words that open sentences or headlines without naming anything.
_CAP_WORD = re.compile(r"[A-Z][\w'&.-]*[\w]|[A-Z]")
_TOKEN = textnorm.WORD


_HAS_DIGIT = re.compile(r"\d")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Crude, cheap stem: drop possessive and plural s, keep at most 7 characters.

    Truncation also merges spelling variants that differ at the end
    ("Zelensky"/"Zelenskyy", "summit"/"summits", "negotiate"/"negotiations").
    """
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:7]


def _zones(title: str, text: str, lead_words: int, max_words: int, straightened: bool = False):
    """Yield (zone, raw text) pieces: headline, lead (first `lead_words` words), body."""
    yield "title", title or ""
    body = (text or "") if straightened else textnorm.straighten(text or "")
    words_seen = 0
    lead_parts, body_parts = [], []
    for para in body.split("\n"):
        if not para.strip():
            continue
        n = len(para.split())
        if words_seen < lead_words:
            lead_parts.append(para)
        else:
            body_parts.append(para)
        words_seen += n
        if words_seen >= max_words:
            break
    yield "lead", "\n".join(lead_parts)
    yield "body", "\n".join(body_parts)


# A token and the non-token characters before it; the same tokens as
# finditer(r"[^\W_]+(?:['.-][^\W_]+)*") would give, but in one C-level findall.
_GAP_TOKEN = re.compile(r"((?:[^\w]|_)*)([^\W_]+(?:['.-][^\W_]+)*)")

# Per-token classification caches (bounded; cleared when full). Texts repeat
# the same few thousand words, so most tokens cost one dict lookup.
_CACHE_MAX = 300_000
_cap_cache: dict[str, str | None] = {}
_term_cache: dict[str, str | None] = {}


def _cap_key(tok: str) -> str | None:
    """Stemmed key of a capitalised, non-stopword token; None otherwise."""
    low = tok.lower()
    key = stem(low) if tok[:1].isupper() and low not in STOPWORDS else None
    if len(_cap_cache) >= _CACHE_MAX:
        _cap_cache.clear()
    _cap_cache[tok] = key
    return key


def _term_key(tok: str) -> str | None:
    """Feature key of a case-folded token: "n:" number, "w:" content-word stem, or None."""
    if not tok.isalpha() and _HAS_DIGIT.search(tok):
        # Bare one-digit numbers say little; years, percentages and amounts do.
        key = "n:" + tok if len(tok) >= 2 else None
    elif tok not in STOPWORDS and len(tok) > 2:
        key = "w:" + stem(tok)
    else:
        key = None
    if len(_term_cache) >= _CACHE_MAX:
        _term_cache.clear()
    _term_cache[tok] = key
    return key


def _entities(raw: str, max_len: int = 2) -> list[str]:
    """Capitalised names ("Joint Base Elmendorf", "NATO", "Rutte") as stemmed keys.

    A run of capitalised words separated only by spaces is one name; any
    punctuation ends it, so a comma-separated list of leaders stays a list.
    A run yields its words and its adjacent word pairs (long runs are mostly
    titles plus names: "French President Emmanuel Macron"), so "President
    Trump" and "Trump" meet.
    """
    out: list[str] = []
    run: list[str] = []
    cache = _cap_cache
    for gap, tok in _GAP_TOKEN.findall(raw):
        key = cache.get(tok, 0)
        if key == 0:
            key = _cap_key(tok)
        if key is None:
            if run:
                _flush(run, out, max_len)
            continue
        if run and gap != " ":
            _flush(run, out, max_len)
        run.append(key)
    _flush(run, out, max_len)
    return out


def _flush(run: list[str], out: list[str], max_len: int) -> None:
    if not run:
        return
    out.extend(run)
    # Adjacent pairs keep full names ("keir starmer", "joint base") without
    # making every long run of titles a unique, never-matching key.
    if len(run) > 1:
        out.extend([run[i] + " " + run[i + 1] for i in range(len(run) - 1)])
    run.clear()


def story_features(title: str, text: str, *, lead_words: int = 80, max_words: int = 5000,
                   zone_weights: dict | None = None, straightened: bool = False) -> dict[str, float]:
    """Zone-weighted, sublinear term frequencies of one article (before IDF).

    Keys are namespaced: "w:" content word stems, "e:" capitalised phrases,
    "n:" numbers. `straightened=True` says `text` already went through
    `textnorm.straighten`.
    """
    zw = zone_weights or {"title": 3.0, "lead": 2.0, "body": 1.0}
    out: dict[str, float] = defaultdict(float)
    cache = _term_cache
    log = math.log
    for zone, chunk in _zones(title, text, lead_words, max_words, straightened):
        if not chunk:
            continue
        keys = []
        for tok in _TOKEN.findall(chunk.casefold()):
            key = cache.get(tok, 0)
            if key == 0:
                key = _term_key(tok)
            if key is not None:
                keys.append(key)
        ents = _entities(chunk)
        keys.extend(["e:" + e for e in ents])
        if zone != "body":
            # Who/where the headline and lead name: the event's own actors and
            # places, as opposed to ones mentioned for context further down.
            keys.extend(["L:" + e for e in ents])
        # Sublinear within a zone, weighted across zones: a word in the headline
        # counts `title` times one mention in the body, however often the body repeats it.
        weight = zw[zone]
        for k, c in Counter(keys).items():
            out[k] += weight * (1.0 + log(c)) if c > 1 else weight
    return dict(out)


class Vocabulary:
    """Feature strings <-> dense int ids, with document frequencies as a numpy array.

    Interning turns every per-article feature dict into two small arrays (ids,
    values), so weighting, centroids and cosines are numpy operations instead of
    dict walks, and a stored article costs a few bytes per feature instead of a
    dict entry plus its own key string.
    """

    def __init__(self, ns_weights: dict, prior_docs: float):
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self.prior_docs = prior_docs
        self.n = 0                                        # documents counted in the IDF
        self.ns_weights = ns_weights
        cap = 1024
        self.df = np.zeros(cap, dtype=np.float64)         # document frequency per id
        self.df_of = np.zeros(cap, dtype=np.int64)        # id whose df weights this id ("L:x" -> "e:x")
        self.nsw = np.zeros(cap, dtype=np.float64)        # namespace weight per id
        self.lead = np.zeros(cap, dtype=bool)             # headline/lead-name group ("L:")

    def _grow(self, need: int) -> None:
        cap = len(self.df)
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        for name in ("df", "df_of", "nsw", "lead"):
            old = getattr(self, name)
            arr = np.zeros(cap, dtype=old.dtype)
            arr[: len(old)] = old
            setattr(self, name, arr)

    def _new_id(self, key: str) -> int:
        i = len(self.names)
        self._grow(i + 1)
        self.ids[key] = i
        self.names.append(key)
        if key[0] == "L":
            self.lead[i] = True
            self.nsw[i] = self.ns_weights.get("e:", 1.0)
            self.df_of[i] = self.id_of("e" + key[1:])
        else:
            self.nsw[i] = self.ns_weights.get(key[:2], 1.0)
            self.df_of[i] = i
        return i

    def id_of(self, key: str) -> int:
        i = self.ids.get(key)
        return self._new_id(key) if i is None else i

    def encode(self, tf: dict) -> "Encoded":
        get = self.ids.get
        lst = [get(k) for k in tf]
        if None in lst:
            lst = [self.id_of(k) if i is None else i for i, k in zip(lst, tf)]
        ids = np.array(lst, dtype=np.int64)
        vals = np.fromiter(tf.values(), dtype=np.float64, count=len(tf))
        return Encoded(ids.astype(np.int32), vals.astype(np.float32))

    def learn(self, enc: "Encoded") -> None:
        self.n += 1
        self.df[enc.ids] += 1.0

    def weighted(self, enc: "Encoded") -> "Vector":
        """Unit-length tf·idf·namespace-weight vectors of the main and headline/lead-name groups.

        Probabilistic-style IDF floored at 0 (a feature in more than half the corpus
        carries no evidence of "same event"); pseudo-documents `prior_docs` keep the
        shared terms of a tiny corpus rare. The "L" group (headline/lead names) is
        kept apart so that many shared body words cannot drown a mismatch of who/where.
        """
        ids = enc.ids
        lognum = math.log(self.n + self.prior_docs + 1)
        w = enc.vals * (lognum - np.log(self.df[self.df_of[ids]] + 0.5)) * self.nsw[ids]
        keep = w > 0
        lead = self.lead[ids]
        return Vector(*_unit(ids[keep & ~lead], w[keep & ~lead]), *_unit(ids[keep & lead], w[keep & lead]))


def _unit(ids: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norm = math.sqrt(float(np.dot(w, w)))
    if not norm:
        return _EMPTY_I, _EMPTY_F
    order = np.argsort(ids)
    return ids[order].astype(np.int32), (w[order] / norm).astype(np.float32)


_EMPTY_I = np.empty(0, dtype=np.int32)
_EMPTY_F = np.empty(0, dtype=np.float32)


class Encoded:
    """An article's story features as interned ids and term frequencies (before IDF)."""

    __slots__ = ("ids", "vals")

    def __init__(self, ids: np.ndarray, vals: np.ndarray):
        self.ids, self.vals = ids, vals


class Vector:
    """Sparse unit vectors (sorted ids, weights) of the main ("M") and lead-names ("L") groups."""

    __slots__ = ("m_ids", "m_w", "l_ids", "l_w")

    def __init__(self, m_ids, m_w, l_ids, l_w):
        self.m_ids, self.m_w, self.l_ids, self.l_w = m_ids, m_w, l_ids, l_w


def _sparse_sum(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.concatenate([p[0] for p in parts]) if parts else _EMPTY_I
    if not len(ids):
        return _EMPTY_I, np.empty(0, dtype=np.float64)
    w = np.concatenate([p[1] for p in parts]).astype(np.float64)
    uniq, inv = np.unique(ids, return_inverse=True)
    return uniq.astype(np.int32), np.bincount(inv, weights=w, minlength=len(uniq))


def _sparse_dot(a_ids, a_w, b_ids, b_w) -> float:
    if not len(a_ids) or not len(b_ids):
        return 0.0
    common, ia, ib = np.intersect1d(a_ids, b_ids, assume_unique=True, return_indices=True)
    return float(np.dot(a_w[ia].astype(np.float64), b_w[ib].astype(np.float64))) if len(common) else 0.0


def cosine(a: dict, b: dict) -> float:
    """Dot product of two sparse dict vectors (unit vectors: their cosine)."""
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(k, 0.0) for k, w in a.items())


class _Story:
    __slots__ = ("members", "times", "first", "last", "acc_m", "acc_l", "centroid_n", "centroid", "keys")

    def __init__(self, timestamp: float):
        self.members: list[tuple[str, Encoded]] = []
        self.times: list[float] = []          # member times, sorted
        self.first = self.last = timestamp
        self.acc_m = self.acc_l = None         # (ids, summed weights) or None = rebuild
        self.centroid_n = 0
        self.centroid = None                   # (m_ids, m_w, l_ids, l_w) unit vectors
        self.keys = _EMPTY_I                   # posting keys this story is listed under (sorted ids)


class StoryIndex:
    """Recent stories, their centroids and an inverted index to find candidates.

    Pure in-memory state; `add`/`assign` take features computed by
    `story_features` (or their `encode`d form). A story is identified by the id
    of its first article.
    """

    def __init__(self, *, threshold: float = 0.2, ns_weights: dict | None = None,
                 index_terms: int = 25, max_candidates: int = 40, time_scale_days: float = 3.0,
                 max_members: int = 50, refresh_ratio: float = 1.25, idf_prior_docs: float = 100.0,
                 lead_entity_share: float = 0.3):
        self.lead_entity_share = lead_entity_share
        self.threshold = threshold
        self.ns_weights = ns_weights or {"w:": 1.0, "e:": 1.0, "n:": 0.5}
        self.index_terms = index_terms
        self.max_candidates = max_candidates
        self.time_scale = time_scale_days * 86400.0
        self.max_members = max_members
        self.refresh_ratio = refresh_ratio
        self.vocab = Vocabulary(self.ns_weights, idf_prior_docs)
        self._stories: dict[str, _Story] = {}
        self._postings: dict[int, str | set] = {}   # feature id -> story id, or set of story ids
        self._expiry: list[tuple[float, str]] = []   # (story last time when pushed, story id)
        self._scratch = np.zeros(1024, dtype=np.float32)   # dense copy of the article vector during assign

    def __len__(self) -> int:
        return len(self._stories)

    def story(self, sid: str) -> _Story | None:
        return self._stories.get(sid)

    def encode(self, tf) -> Encoded:
        return tf if isinstance(tf, Encoded) else self.vocab.encode(tf)

    def _vector(self, enc: Encoded) -> Vector:
        return self.vocab.weighted(enc)

    def _centroid(self, st: _Story):
        # IDF drifts as the corpus grows; rebuild a story's centroid from its
        # members only when the corpus has grown by `refresh_ratio` since, so the
        # cost is amortised. Between rebuilds new members are added to the sum.
        if st.acc_m is None or self.vocab.n > st.centroid_n * self.refresh_ratio:
            vecs = [self._vector(enc) for _, enc in st.members]
            st.acc_m = _sparse_sum([(v.m_ids, v.m_w) for v in vecs])
            st.acc_l = _sparse_sum([(v.l_ids, v.l_w) for v in vecs])
            st.centroid_n = self.vocab.n
            st.centroid = None
        if st.centroid is None:
            (mi, mw), (li, lw) = st.acc_m, st.acc_l
            mn = math.sqrt(float(np.dot(mw, mw))) or 1.0
            ln = math.sqrt(float(np.dot(lw, lw))) or 1.0
            st.centroid = (mi, (mw / mn).astype(np.float32), li, (lw / ln).astype(np.float32))
        return st.centroid

    def _index_keys(self, vec: Vector) -> np.ndarray:
        w = vec.m_w
        if len(w) <= self.index_terms:
            return vec.m_ids
        top = np.argpartition(-w, self.index_terms - 1)[: self.index_terms]
        return vec.m_ids[top]

    def candidates(self, vec: Vector) -> list[str]:
        """Stories sharing the most of the article's top features (bounded by the window)."""
        counts: dict[str, float] = defaultdict(float)
        pos = {int(k): float(w) for k, w in zip(vec.m_ids, vec.m_w)}
        for k in self._index_keys(vec).tolist():
            post = self._postings.get(k)
            if post is None:
                continue
            w = pos[k]
            if isinstance(post, str):
                counts[post] += w
            else:
                for sid in post:
                    counts[sid] += w
        if len(counts) <= self.max_candidates:
            return sorted(counts, key=counts.__getitem__, reverse=True)
        return heapq.nlargest(self.max_candidates, counts, key=counts.__getitem__)

    def _time_factor(self, st: _Story, timestamp: float | None) -> float:
        if timestamp is None:
            return 1.0
        times = st.times
        i = bisect.bisect_left(times, timestamp)
        dt = min(abs(timestamp - times[j]) for j in (i - 1, i) if 0 <= j < len(times))
        # Gentle decay: a developing story may run for days, but the same
        # words two weeks apart are more likely a new event.
        return 1.0 / (1.0 + (dt / self.time_scale) ** 2)

    def assign(self, tf, timestamp: float | None) -> dict:
        """Best story for an article: {"story_id", "score", "cosine", "time_factor", "shared"} or story_id None."""
        enc = self.encode(tf)
        vec = self._vector(enc)
        cands = self.candidates(vec)
        if not cands:
            return {"story_id": None, "score": None, "nearest": None}
        cents = [self._centroid(self._stories[sid]) for sid in cands]
        # Cosines with all candidate centroids at once: scatter the article into a
        # dense scratch vector, gather at each centroid's ids, sum per centroid.
        need = len(self.vocab.names)
        if len(self._scratch) < need:
            self._scratch = np.zeros(max(need, 2 * len(self._scratch)), dtype=np.float32)
        scratch = self._scratch
        scratch[vec.m_ids] = vec.m_w
        sizes = np.fromiter((len(c[0]) for c in cents), dtype=np.int64, count=len(cents))
        ids = np.concatenate([c[0] for c in cents])
        ws = np.concatenate([c[1] for c in cents])
        prod = scratch[ids] * ws
        scratch[vec.m_ids] = 0.0
        cms = np.zeros(len(cents), dtype=np.float64)
        nonempty = sizes > 0
        if len(prod):
            starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
            cms[nonempty] = np.add.reduceat(prod, starts[nonempty], dtype=np.float64)
        share = self.lead_entity_share
        best = None
        for j, sid in enumerate(cands):
            cm = float(cms[j])
            cl = _sparse_dot(vec.l_ids, vec.l_w, cents[j][2], cents[j][3]) if share else 0.0
            cos = (1.0 - share) * cm + share * cl
            tfac = self._time_factor(self._stories[sid], timestamp)
            score = cos * tfac
            if best is None or score > best["score"]:
                best = {"story_id": sid, "score": score, "cosine": cos, "terms_cosine": cm, "lead_names_cosine": cl,
                        "time_factor": tfac, "_cent": cents[j]}
        if best["score"] < self.threshold:
            return {"story_id": None, "score": best["score"], "nearest": best["story_id"],
                    "shared": self._top_shared(vec, best["_cent"])}
        best["shared"] = self._top_shared(vec, best.pop("_cent"))
        return best

    def _top_shared(self, vec: Vector, cent, n: int = 8) -> list[tuple[str, float]]:
        """The features contributing most to the main cosine, for explanations."""
        common, ia, ib = np.intersect1d(vec.m_ids, cent[0], assume_unique=True, return_indices=True)
        if not len(common):
            return []
        parts = vec.m_w[ia].astype(np.float64) * cent[1][ib].astype(np.float64)
        order = np.argsort(-parts, kind="stable")[:n]
        names = self.vocab.names
        return [(names[int(common[i])], float(parts[i])) for i in order]

    def learn(self, tf) -> None:
        """Count an article in the IDF (originals only: copies would skew it)."""
        self.vocab.learn(self.encode(tf))

    def add(self, item_id: str, tf, timestamp: float, story_id: str | None) -> str:
        """Put an article into `story_id` (or a new story named after it); returns the story id."""
        sid = story_id or item_id
        st = self._stories.get(sid)
        if st is None:
            st = _Story(timestamp)
            self._stories[sid] = st
        if len(st.members) < self.max_members:
            # Bounded: a story's early members define it; hundreds more would only
            # cost time (the centroid is stable by then).
            enc = self.encode(tf)
            st.members.append((item_id, enc))
            bisect.insort(st.times, timestamp)
            vec = self._vector(enc)
            if st.acc_m is not None:
                st.acc_m = _sparse_sum([st.acc_m, (vec.m_ids, vec.m_w)])
                st.acc_l = _sparse_sum([st.acc_l, (vec.l_ids, vec.l_w)])
            st.centroid = None
            keys = self._index_keys(vec)
            fresh = np.setdiff1d(keys, st.keys, assume_unique=True)
            if len(fresh):
                st.keys = np.union1d(st.keys, fresh).astype(np.int32)
            postings = self._postings
            for k in fresh.tolist():
                # A posting is a bare story id until a second story shares the key
                # (most keys are never shared: a set each would dominate memory).
                post = postings.get(k)
                if post is None:
                    postings[k] = sid
                elif isinstance(post, str):
                    if post != sid:
                        postings[k] = {post, sid}
                else:
                    post.add(sid)
        st.first = min(st.first, timestamp)
        if timestamp > st.last:
            st.last = timestamp
        heapq.heappush(self._expiry, (st.last, sid))
        return sid

    def touch(self, sid: str, timestamp: float) -> None:
        """Keep a story alive (a copy of one of its articles arrived) without changing what it is about."""
        st = self._stories.get(sid)
        if st is not None and timestamp > st.last:
            st.last = timestamp
            heapq.heappush(self._expiry, (timestamp, sid))

    def evict_before(self, ts: float) -> int:
        """Drop stories whose latest article is older than `ts`."""
        n = 0
        while self._expiry and self._expiry[0][0] < ts:
            last, sid = heapq.heappop(self._expiry)
            st = self._stories.get(sid)
            if st is None or st.last >= ts:
                continue   # stale heap entry; the story was updated later
            del self._stories[sid]
            n += 1
            postings = self._postings
            for k in st.keys.tolist():
                post = postings.get(k)
                if post is None:
                    continue
                if isinstance(post, str):
                    if post == sid:
                        del postings[k]
                else:
                    post.discard(sid)
                    if len(post) == 1:
                        postings[k] = next(iter(post))
                    elif not post:
                        del postings[k]
        return n
