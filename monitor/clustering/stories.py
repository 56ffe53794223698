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
stored article costs ~8 bytes per feature. The IDF counts the latest
`idf_docs` originals only, so state (vocabulary included) is bounded and a
restarted process rebuilds what a running one holds.
"""

from __future__ import annotations

import bisect
import heapq
import math
from functools import lru_cache
import re
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field, replace

import numpy as np

from monitor.clustering.postings import Postings
from monitor.clustering.settings import ClusterSettings
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



_HAS_DIGIT = re.compile(r"\d")


@lru_cache(maxsize=50_000)
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


def _zones(title: str, text: str, lead_words: int, max_words: int, straightened: bool = False,
           para_tokens: list[list[str]] | None = None):
    """Yield (zone, raw text, tokens or None) pieces: headline, lead (first `lead_words` words), body.

    `para_tokens[j]` are the `words_of_straight` tokens of the j-th non-blank paragraph, when
    the caller has them (copy features tokenise the same paragraphs); a zone's tokens are then
    theirs concatenated (a token never spans a line break), otherwise None.
    """
    yield "title", title or "", None
    body = (text or "") if straightened else textnorm.straighten(text or "")
    words_seen = 0
    lead_parts, body_parts = [], []
    lead_toks: list[str] | None = [] if para_tokens is not None else None
    body_toks: list[str] | None = [] if para_tokens is not None else None
    known = len(para_tokens) if para_tokens is not None else 0
    j = 0
    for para in body.split("\n"):
        if not para.strip():
            continue
        n = len(para.split())
        if words_seen < lead_words:
            lead_parts.append(para)
            if lead_toks is not None:
                if j < known:
                    lead_toks.extend(para_tokens[j])
                else:
                    lead_toks = None
        else:
            body_parts.append(para)
            if body_toks is not None:
                if j < known:
                    body_toks.extend(para_tokens[j])
                else:
                    body_toks = None
        j += 1
        words_seen += n
        if words_seen >= max_words:
            break
    yield "lead", "\n".join(lead_parts), lead_toks
    yield "body", "\n".join(body_parts), body_toks


# Per-token classification caches (bounded; cleared when full). Texts repeat
# the same few thousand words, so most tokens cost one dict lookup.
_CACHE_MAX = 50_000  # a few MB each; news text's frequent words fit many times over
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


def _upper_class() -> str:
    """Regex class of the characters that start a capitalised token: `str.isupper` and `[^\\W_]`."""
    alnum = re.compile(r"[^\W_]")
    ranges: list[list[int]] = []
    for c in range(0x110000):
        ch = chr(c)
        if ch.isupper() and alnum.match(ch):
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


# A run of capitalised tokens separated by single spaces, each a whole token `[^\W_]+(?:['.-][^\W_]+)*`:
# not preceded by a token character, nor by one of ' . - glued to a token (that would make
# it the tail of a longer token such as "foo-Bar"). One C-level findall replaces a Python
# step per token; only the capitalised tokens are looked at. Built on first use: listing the
# uppercase characters walks all of Unicode (~0.3 s), which only clustering processes need.
@lru_cache(maxsize=1)
def _cap_run() -> re.Pattern:
    cap = r"[{U}][^\W_]*(?:['.-][^\W_]+)*".replace("{U}", _upper_class())
    return re.compile(r"(?<![^\W_])(?<![^\W_]['.-])" + cap + "(?: " + cap + ")*")


def _entities(raw: str, max_len: int = 2) -> list[str]:
    """Capitalised names ("Joint Base Elmendorf", "NATO", "Rutte") as stemmed keys.

    A run of capitalised words separated only by spaces is one name; any
    punctuation ends it, so a comma-separated list of leaders stays a list; a
    capitalised stopword ("The", "Of") ends it too.
    A run yields its words and its adjacent word pairs (long runs are mostly
    titles plus names: "French President Emmanuel Macron"), so "President
    Trump" and "Trump" meet.
    """
    out: list[str] = []
    run: list[str] = []
    cache = _cap_cache
    for found in _cap_run().findall(raw):
        for tok in found.split(" "):
            key = cache.get(tok, 0)
            if key == 0:
                key = _cap_key(tok)
            if key is None:
                _flush(run, out, max_len)
            else:
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
                   zone_weights: dict | None = None, straightened: bool = False,
                   para_tokens: list[list[str]] | None = None) -> dict[str, float]:
    """Zone-weighted, sublinear term frequencies of one article (before IDF).

    Keys are namespaced: "w:" content word stems, "e:" capitalised phrases,
    "n:" numbers. `straightened=True` says `text` already went through
    `textnorm.straighten`; `para_tokens` are its paragraphs' tokens if already known (see `_zones`).
    """
    zw = zone_weights or {"title": 3.0, "lead": 2.0, "body": 1.0}
    out: dict[str, float] = defaultdict(float)
    cache = _term_cache
    log = math.log
    for zone, chunk, toks in _zones(title, text, lead_words, max_words, straightened, para_tokens):
        if not chunk:
            continue
        if toks is None:
            toks = textnorm.words_of_straight(chunk)
        # Sublinear within a zone, weighted across zones: a word in the headline
        # counts `title` times one mention in the body, however often the body repeats it.
        weight = zw[zone]
        # Count tokens first (C-level Counter), then map each distinct token to its key once;
        # keys keep their first-occurrence order, as counting the key sequence would.
        counts: dict[str, int] = {}
        for tok, c in Counter(toks).items():
            key = cache.get(tok, 0)
            if key == 0:
                key = _term_key(tok)
            if key is not None:
                counts[key] = counts.get(key, 0) + c
        for k, c in counts.items():
            out[k] += weight * (1.0 + log(c)) if c > 1 else weight
        ents = Counter(_entities(chunk)).items()
        for e, c in ents:
            out["e:" + e] += weight * (1.0 + log(c)) if c > 1 else weight
        if zone != "body":
            # Who/where the headline and lead name: the event's own actors and
            # places, as opposed to ones mentioned for context further down.
            for e, c in ents:
                out["L:" + e] += weight * (1.0 + log(c)) if c > 1 else weight
    return dict(out)


@dataclass(slots=True)
class Encoded:
    """An article's story features as interned ids and term frequencies (before IDF)."""

    ids: np.ndarray    # int32, unique
    vals: np.ndarray   # float32


@dataclass(slots=True)
class Vector:
    """Sparse unit vectors (sorted ids, weights) of the main ("M") and lead-names ("L") groups."""

    m_ids: np.ndarray
    m_w: np.ndarray
    l_ids: np.ndarray
    l_w: np.ndarray


@dataclass(frozen=True, slots=True)
class StoryMatch:
    """The best candidate story of an article; `story_id` is None when it is below the threshold."""

    story_id: str | None
    score: float | None = None
    cosine: float | None = None
    time_factor: float | None = None
    nearest: str | None = None                       # best story below the threshold
    shared: tuple[tuple[str, float], ...] = ()       # top contributing features, for explanations


class Vocabulary:
    """Feature strings <-> dense int ids, with window document frequencies as numpy arrays.

    Interning turns every per-article feature dict into two small arrays (ids,
    values), so weighting, centroids and cosines are numpy operations instead of
    dict walks. The document frequencies count a bounded set of recent articles
    (`learn` / `unlearn`), so the IDF — and with it every decision — is a function
    of those articles, the same after a restart as in a process that never
    stopped. An id is freed when no counted article and no story member uses it
    any more, so the vocabulary is bounded too.
    """

    def __init__(self, ns_weights: dict, prior_docs: float):
        self.ids: dict[str, int] = {}
        self.names: list[str | None] = []
        self.free: list[int] = []
        self.prior_docs = prior_docs
        self.n = 0                                        # documents counted in the IDF
        self.ns_weights = ns_weights
        cap = 1024
        self.df = np.zeros(cap, dtype=np.float64)         # window document frequency per id
        self.refs = np.zeros(cap, dtype=np.int32)         # story members using the id
        self.df_of = np.zeros(cap, dtype=np.int64)        # id whose df weights this id ("L:x" -> "e:x")
        self.nsw = np.zeros(cap, dtype=np.float64)        # namespace weight per id
        self.lead = np.zeros(cap, dtype=bool)             # headline/lead-name group ("L:")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def capacity(self) -> int:
        return len(self.names)

    def _grow(self, need: int) -> None:
        cap = len(self.df)
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        for name in ("df", "refs", "df_of", "nsw", "lead"):
            old = getattr(self, name)
            arr = np.zeros(cap, dtype=old.dtype)
            arr[: len(old)] = old
            setattr(self, name, arr)

    def _new_id(self, key: str) -> int:
        i = self._alloc(key, fresh := [])
        self._init_ids(fresh)
        return i

    def _alloc(self, key: str, fresh: list[tuple[int, str, int]]) -> int:
        """Intern `key` (and the "e:" key an "L:" key takes its df from); numpy fields are set later."""
        i = self.ids.get(key)
        if i is not None:
            return i
        if self.free:
            i = self.free.pop()
            self.names[i] = key
        else:
            i = len(self.names)
            self.names.append(key)
        self.ids[key] = i
        df_of = self._alloc("e" + key[1:], fresh) if key[0] == "L" else i
        fresh.append((i, key, df_of))
        return i

    def _init_ids(self, fresh: list[tuple[int, str, int]]) -> None:
        """Set the numpy fields of newly interned ids in one vectorised step per field."""
        if not fresh:
            return
        self._grow(len(self.names))
        idx = np.fromiter((f[0] for f in fresh), dtype=np.int64, count=len(fresh))
        ew = self.ns_weights.get("e:", 1.0)
        nsw = self.ns_weights
        self.lead[idx] = [f[1][0] == "L" for f in fresh]
        self.nsw[idx] = [ew if f[1][0] == "L" else nsw.get(f[1][:2], 1.0) for f in fresh]
        self.df_of[idx] = [f[2] for f in fresh]

    def id_of(self, key: str) -> int:
        i = self.ids.get(key)
        return self._new_id(key) if i is None else i

    def encode(self, tf: dict) -> Encoded:
        get = self.ids.get
        lst = [get(k) for k in tf]
        if None in lst:
            # New keys: interned in the same order as one id_of per key would, numpy fields set at once.
            fresh: list[tuple[int, str, int]] = []
            alloc = self._alloc
            lst = [alloc(k, fresh) if i is None else i for i, k in zip(lst, tf)]
            self._init_ids(fresh)
        ids = np.array(lst, dtype=np.int32)
        vals = np.fromiter(tf.values(), dtype=np.float64, count=len(tf)).astype(np.float32)
        return Encoded(ids, vals)

    def learn(self, ids: np.ndarray) -> None:
        self.n += 1
        self.df[ids] += 1.0

    def unlearn(self, ids: np.ndarray) -> None:
        self.n -= 1
        self.df[ids] -= 1.0
        self._release(ids)

    def hold(self, ids: np.ndarray) -> None:
        self.refs[ids] += 1

    def drop(self, ids: np.ndarray) -> None:
        self.refs[ids] -= 1
        self._release(ids)

    def _release(self, ids: np.ndarray) -> None:
        dead = ids[(self.df[ids] <= 0.0) & (self.refs[ids] <= 0)]
        for i in dead.tolist():
            name = self.names[i]
            if name is None:
                continue
            del self.ids[name]
            self.names[i] = None
            self.df[i] = 0.0
            self.refs[i] = 0
            self.free.append(i)

    def weighted(self, enc: Encoded) -> Vector:
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


@dataclass(slots=True, eq=False)
class _Story:
    first: float
    last: float
    members: list[tuple[str, Encoded]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)      # member times, sorted
    acc_m: tuple | None = None                             # (ids, summed weights) or None = rebuild
    acc_l: tuple | None = None
    centroid_n: int = 0
    centroid: tuple | None = None                          # (m_ids, m_w, l_ids, l_w) unit vectors
    keys: np.ndarray = field(default_factory=lambda: _EMPTY_I)   # posting keys (sorted feature ids)


class StoryIndex:
    """Recent stories, their centroids and an inverted index to find candidates.

    Pure in-memory state; `add`/`assign` take features computed by
    `story_features` (or their `encode`d form). A story is identified by the id
    of its first article. `learn`/`unlearn` keep the IDF of the latest
    `idf_docs` originals; eviction drops stories whose latest article is older
    than the window.
    """

    def __init__(self, settings: ClusterSettings | None = None, **overrides):
        s = replace(settings or ClusterSettings(), **overrides)
        self.settings = s
        self.threshold = s.story_threshold
        self.lead_entity_share = s.lead_entity_share
        self.index_terms = s.index_terms
        self.max_candidates = s.max_candidates
        self.time_scale = s.time_scale_days * 86400.0
        self.max_members = s.story_max_members
        self.refresh_ratio = s.centroid_refresh_ratio
        self.centroid_terms = s.centroid_terms
        self.vocab = Vocabulary(s.namespace_weights, s.idf_prior_docs)
        self._stories: dict[str, _Story] = {}
        self._postings: Postings[int, str] = Postings()   # feature id -> story ids
        self._expiry: list[tuple[float, str]] = []        # (story last time when pushed, story id)
        self.idf_docs = s.idf_docs
        # article id -> feature ids, in learning order. An OrderedDict: the oldest is taken once per
        # article, and next(iter()) of a plain dict walks the slots its deletions left at the front.
        self._learned: OrderedDict[str, np.ndarray] = OrderedDict()

        self._scratch = np.zeros(1024, dtype=np.float32)  # dense copy of the article vector during assign

    def __len__(self) -> int:
        return len(self._stories)

    def story(self, sid: str) -> _Story | None:
        return self._stories.get(sid)

    def encode(self, tf) -> Encoded:
        return tf if isinstance(tf, Encoded) else self.vocab.encode(tf)

    def vector(self, enc: Encoded) -> Vector:
        """The weighted unit vectors of an encoded article under the current IDF."""
        return self.vocab.weighted(enc)

    def _vector(self, enc: Encoded) -> Vector:
        return self.vocab.weighted(enc)

    def _centroid(self, st: _Story):
        # IDF drifts as the window changes; rebuild a story's centroid from its members
        # only when the corpus has changed by `refresh_ratio` since, so the cost is
        # amortised. Between rebuilds new members are added to the sum.
        n, cn, ratio = self.vocab.n, st.centroid_n, self.refresh_ratio
        if (st.acc_m is None and st.centroid is None) or n > cn * ratio or n * ratio < cn:
            vecs = [self._vector(enc) for _, enc in st.members]
            st.acc_m = _sparse_sum([(v.m_ids, v.m_w) for v in vecs])
            st.acc_l = _sparse_sum([(v.l_ids, v.l_w) for v in vecs])
            st.centroid_n = n
            st.centroid = None
        if st.centroid is None:
            (mi, mw), (li, lw) = st.acc_m, st.acc_l
            mn = math.sqrt(float(np.dot(mw, mw))) or 1.0
            ln = math.sqrt(float(np.dot(lw, lw))) or 1.0
            k = self.centroid_terms
            if k and len(mw) > k:
                # The heaviest terms carry the cosine; the long tail of a big story's
                # vocabulary (each word of one member) only costs gather time.
                top = np.sort(np.argpartition(-mw, k - 1)[:k])
                mi, mw = mi[top], mw[top]
            st.centroid = (mi, (mw / mn).astype(np.float32), li, (lw / ln).astype(np.float32))
            if len(st.members) == 1:
                # Most stories never get a second article: their sums would only double the
                # memory of the window. A second member rebuilds them from both members.
                st.acc_m = st.acc_l = None
        return st.centroid

    def _index_keys(self, vec: Vector) -> np.ndarray:
        w = vec.m_w
        if len(w) <= self.index_terms:
            return vec.m_ids
        top = np.argpartition(-w, self.index_terms - 1)[: self.index_terms]
        return np.sort(vec.m_ids[top])

    def candidates(self, vec: Vector) -> list[str]:
        """Stories sharing the most of the article's top features (bounded by the window)."""
        counts: dict[str, float] = {}
        keys = self._index_keys(vec)
        weights = vec.m_w[np.searchsorted(vec.m_ids, keys)]
        self._postings.accumulate(keys.tolist(), weights.tolist(), counts)
        # Ties broken by story id: the same state gives the same candidates in any process.
        # (-count, id) tuples compare in C; a key function would be one Python call per story.
        ranked = [(-c, sid) for sid, c in counts.items()]
        if len(ranked) <= self.max_candidates:
            ranked.sort()
        else:
            ranked = heapq.nsmallest(self.max_candidates, ranked)
        return [sid for _, sid in ranked]

    def _time_factor(self, st: _Story, timestamp: float | None) -> float:
        if timestamp is None:
            return 1.0
        times = st.times
        i = bisect.bisect_left(times, timestamp)
        dt = min(abs(timestamp - times[j]) for j in (i - 1, i) if 0 <= j < len(times))
        # Gentle decay: a developing story may run for days, but the same
        # words two weeks apart are more likely a new event.
        return 1.0 / (1.0 + (dt / self.time_scale) ** 2)

    def assign(self, tf, timestamp: float | None, vec: Vector | None = None) -> StoryMatch:
        """Best story for an article (does not change the index); `vec` is its weighted vector if known."""
        if vec is None:
            vec = self._vector(self.encode(tf))
        cands = self.candidates(vec)
        if not cands:
            return StoryMatch(story_id=None)
        stories = [self._stories[sid] for sid in cands]
        cents = [self._centroid(st) for st in stories]
        # Cosines with all candidate centroids at once: scatter the article into a
        # dense scratch vector, gather at each centroid's ids, sum per centroid.
        need = self.vocab.capacity
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
        if share:
            cls = np.array([_sparse_dot(vec.l_ids, vec.l_w, c[2], c[3]) for c in cents])
            cos = (1.0 - share) * cms + share * cls
        else:
            cos = cms
        tfac = np.array([self._time_factor(st, timestamp) for st in stories])
        scores = cos * tfac
        j = int(np.argmax(scores))   # first of equal scores: candidates are in a deterministic order
        score, sid = float(scores[j]), cands[j]
        shared = tuple(self._top_shared(vec, cents[j]))
        if score < self.threshold:
            return StoryMatch(story_id=None, score=score, nearest=sid, shared=shared)
        return StoryMatch(story_id=sid, score=score, cosine=float(cos[j]), time_factor=float(tfac[j]), shared=shared)

    def _top_shared(self, vec: Vector, cent, n: int = 8) -> list[tuple[str, float]]:
        """The features contributing most to the main cosine, for explanations."""
        common, ia, ib = np.intersect1d(vec.m_ids, cent[0], assume_unique=True, return_indices=True)
        if not len(common):
            return []
        parts = vec.m_w[ia].astype(np.float64) * cent[1][ib].astype(np.float64)
        order = np.argsort(-parts, kind="stable")[:n]
        names = self.vocab.names
        return [(names[int(common[i])], float(parts[i])) for i in order]

    def learn(self, item_id: str, tf) -> Encoded:
        """Count an article in the IDF (originals only: copies would skew it); the oldest drops out."""
        enc = self.encode(tf)
        if item_id not in self._learned:
            self.vocab.learn(enc.ids)
            self._learned[item_id] = enc.ids
            while len(self._learned) > self.idf_docs:
                self.unlearn(next(iter(self._learned)))
        return enc

    def unlearn(self, item_id: str) -> None:
        """Take an article out of the IDF (it fell out of the count, or turned out to be a copy)."""
        ids = self._learned.pop(item_id, None)
        if ids is not None:
            self.vocab.unlearn(ids)

    def add(self, item_id: str, tf, timestamp: float, story_id: str | None, vec: Vector | None = None) -> str:
        """Put an article into `story_id` (or a new story named after it); returns the story id.

        `vec` is the article's weighted vector when the caller has it (same IDF as now)."""
        sid = story_id or item_id
        st = self._stories.get(sid)
        if st is None:
            st = _Story(first=timestamp, last=timestamp)
            self._stories[sid] = st
        if len(st.members) < self.max_members:
            # Bounded: a story's early members define it; hundreds more would only
            # cost time (the centroid is stable by then).
            enc = self.encode(tf)
            self.vocab.hold(enc.ids)
            st.members.append((item_id, enc))
            bisect.insort(st.times, timestamp)
            if vec is None:
                vec = self._vector(enc)
            if st.acc_m is not None:
                st.acc_m = _sparse_sum([st.acc_m, (vec.m_ids, vec.m_w)])
                st.acc_l = _sparse_sum([st.acc_l, (vec.l_ids, vec.l_w)])
            st.centroid = None
            fresh = np.setdiff1d(self._index_keys(vec), st.keys, assume_unique=True)
            if len(fresh):
                st.keys = np.union1d(st.keys, fresh).astype(np.int32)
            for k in fresh.tolist():
                self._postings.add(k, sid)
        st.first = min(st.first, timestamp)
        if timestamp > st.last:
            st.last = timestamp
        heapq.heappush(self._expiry, (st.last, sid))
        return sid

    def remove_member(self, sid: str, item_id: str, timestamp: float) -> None:
        """Take an article out of a story's centroid (it turned out to be a copy of a later-arriving original)."""
        st = self._stories.get(sid)
        if st is None:
            return
        for j, (mid, enc) in enumerate(st.members):
            if mid == item_id:
                del st.members[j]
                del st.times[bisect.bisect_left(st.times, timestamp)]
                self.vocab.drop(enc.ids)
                st.acc_m = st.acc_l = st.centroid = None
                return

    def touch(self, sid: str, timestamp: float) -> None:
        """Keep a story alive (a copy of one of its articles arrived) without changing what it is about."""
        st = self._stories.get(sid)
        if st is not None and timestamp > st.last:
            st.last = timestamp
            heapq.heappush(self._expiry, (timestamp, sid))

    def evict_before(self, ts: float) -> int:
        """Drop stories whose latest article is older than `ts`; returns how many."""
        n = 0
        while self._expiry and self._expiry[0][0] < ts:
            _, sid = heapq.heappop(self._expiry)
            st = self._stories.get(sid)
            if st is None or st.last >= ts:
                continue   # stale heap entry; the story was updated later
            del self._stories[sid]
            n += 1
            for k in st.keys.tolist():
                self._postings.discard(k, sid)
            for _, enc in st.members:
                self.vocab.drop(enc.ids)
        return n
