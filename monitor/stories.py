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
"""

from __future__ import annotations

import heapq
import math
from functools import lru_cache
import re
from collections import Counter, defaultdict

from . import textnorm

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
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*(?:[.,]\d+)*")


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


def _zones(title: str, text: str, lead_words: int, max_words: int):
    """Yield (zone, raw text) pieces: headline, lead (first `lead_words` words), body."""
    yield "title", title or ""
    body = textnorm.straighten(text or "")
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


_CAP_RUN = re.compile(r"[^\W_]+(?:['.-][^\W_]+)*")


def _entities(raw: str, max_len: int = 2) -> list[str]:
    """Capitalised names ("Joint Base Elmendorf", "NATO", "Rutte") as stemmed keys.

    A run of capitalised words separated only by spaces is one name; any
    punctuation ends it, so a comma-separated list of leaders stays a list.
    A run yields its words and its adjacent word pairs (long runs are mostly
    titles plus names: "French President Emmanuel Macron"), so "President
    Trump" and "Trump" meet.
    """
    out = []
    run: list[str] = []
    last_end = -1
    for m in _CAP_RUN.finditer(raw):
        tok = m.group()
        low = tok.lower()
        is_cap = tok[:1].isupper() and low not in STOPWORDS
        joined = last_end >= 0 and raw[last_end:m.start()] == " "
        if is_cap and (joined or not run):
            run.append(stem(low))
        else:
            _flush(run, out, max_len)
            run = [stem(low)] if is_cap else []
        last_end = m.end()
    _flush(run, out, max_len)
    return out


def _flush(run: list[str], out: list[str], max_len: int) -> None:
    if not run:
        return
    out.extend(run)
    # Adjacent pairs keep full names ("keir starmer", "joint base") without
    # making every long run of titles a unique, never-matching key.
    out.extend(" ".join(run[i : i + 2]) for i in range(len(run) - 1))
    run.clear()


def story_features(title: str, text: str, *, lead_words: int = 80, max_words: int = 5000,
                   zone_weights: dict | None = None) -> dict[str, float]:
    """Zone-weighted, sublinear term frequencies of one article (before IDF).

    Keys are namespaced: "w:" content word stems, "e:" capitalised phrases,
    "n:" numbers.
    """
    zw = zone_weights or {"title": 3.0, "lead": 2.0, "body": 1.0}
    out: dict[str, float] = defaultdict(float)
    for zone, chunk in _zones(title, text, lead_words, max_words):
        if not chunk:
            continue
        counts: Counter = Counter()
        for tok in _TOKEN.findall(chunk.casefold()):
            if not tok.isalpha() and _HAS_DIGIT.search(tok):
                # Bare one-digit numbers say little; years, percentages and amounts do.
                if len(tok) >= 2:
                    counts["n:" + tok] += 1
            elif tok not in STOPWORDS and len(tok) > 2:
                counts["w:" + stem(tok)] += 1
        for ent in _entities(chunk):
            counts["e:" + ent] += 1
            if zone != "body":
                # Who/where the headline and lead name: the event's own actors and
                # places, as opposed to ones mentioned for context further down.
                counts["L:" + ent] += 1
        # Sublinear within a zone, weighted across zones: a word in the headline
        # counts `title` times one mention in the body, however often the body repeats it.
        weight = zw[zone]
        for k, c in counts.items():
            out[k] += weight * (1.0 + math.log(c))
    return dict(out)


class IdfModel:
    """Document frequencies learned incrementally from the articles seen."""

    def __init__(self, prior_docs: float = 100.0):
        self.df: Counter = Counter()
        self.n = 0
        # Pseudo-documents in which no feature occurs: until the corpus is large,
        # a feature shared by a few articles is presumed rare in the world rather
        # than "common" (in a 3-article corpus every shared word would otherwise
        # look like a stopword). The prior fades as the corpus grows.
        self.prior_docs = prior_docs

    def add(self, feats: dict) -> None:
        self.n += 1
        self.df.update(feats.keys())

    def idf(self, key: str) -> float:
        # Probabilistic-style IDF, floored at 0: a feature in more than half the
        # corpus carries no evidence of "same event" at all.
        df = self.df.get(key, 0)
        return max(0.0, math.log((self.n + self.prior_docs + 1) / (df + 0.5)))


def weighted(tf: dict, idf: IdfModel, ns_weights: dict) -> dict[str, dict[str, float]]:
    """Unit-length tf·idf·namespace-weight vectors, one per group.

    Group "L" holds the headline/lead names, group "M" everything else; they are
    compared separately so that many shared body words cannot drown a mismatch
    of who/where the article is about.
    """
    groups: dict[str, dict[str, float]] = {"M": {}, "L": {}}
    # idf() inlined: this loop runs for every feature of every compared article.
    lognum = math.log(idf.n + idf.prior_docs + 1)
    df = idf.df
    log = math.log
    main, lead = groups["M"], groups["L"]
    for k, v in tf.items():
        if k[0] == "L":
            w = v * (lognum - log(df.get("e" + k[1:], 0) + 0.5)) * ns_weights.get("e:", 1.0)
            if w > 0:
                lead[k] = w
        else:
            w = v * (lognum - log(df.get(k, 0) + 0.5)) * ns_weights.get(k[:2], 1.0)
            if w > 0:
                main[k] = w
    for g, vec in groups.items():
        norm = math.sqrt(sum(w * w for w in vec.values()))
        groups[g] = {k: w / norm for k, w in vec.items()} if norm else {}
    return groups


def cosine(a: dict, b: dict) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(k, 0.0) for k, w in a.items())


def top_shared(a: dict, b: dict, n: int = 8) -> list[tuple[str, float]]:
    """The features contributing most to cos(a, b), for explanations."""
    parts = [(k, a[k] * b[k]) for k in a.keys() & b.keys()]
    return sorted(parts, key=lambda kv: -kv[1])[:n]


class StoryIndex:
    """Recent stories, their centroids and an inverted index to find candidates.

    Pure in-memory state; `add`/`assign` take features computed by
    `story_features`. A story is identified by the id of its first article.
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
        self.idf = IdfModel(idf_prior_docs)
        self._stories: dict[str, dict] = {}
        self._postings: dict[str, set] = defaultdict(set)
        self._expiry: list[tuple[float, str]] = []   # (story last time when pushed, story id)

    def __len__(self) -> int:
        return len(self._stories)

    def story(self, sid: str) -> dict | None:
        return self._stories.get(sid)

    def _vector(self, tf: dict) -> dict:
        return weighted(tf, self.idf, self.ns_weights)

    def _centroid(self, st: dict) -> dict:
        # IDF drifts as the corpus grows; rebuild a story's centroid from its
        # members only when the corpus has grown by `refresh_ratio` since, so the
        # cost is amortised. Between rebuilds new members are added to the sum.
        if st["acc"] is None or self.idf.n > st["centroid_n"] * self.refresh_ratio:
            st["acc"] = {"M": defaultdict(float), "L": defaultdict(float)}
            for _, tf, _ in st["members"]:
                self._accumulate(st, self._vector(tf))
            st["centroid_n"] = self.idf.n
            st["centroid"] = None
        if st["centroid"] is None:
            cent = {}
            for g, acc in st["acc"].items():
                norm = math.sqrt(sum(w * w for w in acc.values())) or 1.0
                cent[g] = {k: w / norm for k, w in acc.items()}
            st["centroid"] = cent
        return st["centroid"]

    @staticmethod
    def _accumulate(st: dict, vec: dict) -> None:
        for g, v in vec.items():
            acc = st["acc"][g]
            for k, w in v.items():
                acc[k] += w

    def _index_keys(self, vec: dict) -> list[str]:
        m = vec["M"]
        return [k for k, _ in heapq.nlargest(self.index_terms, m.items(), key=lambda kv: kv[1])]

    def similarity(self, vec: dict, cent: dict) -> tuple[float, float, float]:
        """(combined, main cosine, headline/lead-name cosine) of an article vector and a story centroid."""
        cm = cosine(vec["M"], cent["M"])
        cl = cosine(vec["L"], cent["L"])
        return (1.0 - self.lead_entity_share) * cm + self.lead_entity_share * cl, cm, cl

    def candidates(self, vec: dict) -> list[str]:
        """Stories sharing the most of the article's top features (bounded by the window)."""
        counts: Counter = Counter()
        for k in self._index_keys(vec):
            for sid in self._postings.get(k, ()):
                counts[sid] += vec["M"][k]
        return [sid for sid, _ in counts.most_common(self.max_candidates)]

    def assign(self, tf: dict, timestamp: float | None) -> dict:
        """Best story for an article: {"story_id", "score", "cosine", "time_factor", "shared"} or story_id None."""
        vec = self._vector(tf)
        best = None
        for sid in self.candidates(vec):
            st = self._stories[sid]
            cent = self._centroid(st)
            cos, cm, cl = self.similarity(vec, cent)
            if timestamp is None:
                tfac = 1.0
            else:
                dt = min(abs(timestamp - t) for _, _, t in st["members"])
                # Gentle decay: a developing story may run for days, but the same
                # words two weeks apart are more likely a new event.
                tfac = 1.0 / (1.0 + (dt / self.time_scale) ** 2)
            score = cos * tfac
            if best is None or score > best["score"]:
                best = {"story_id": sid, "score": score, "cosine": cos, "terms_cosine": cm, "lead_names_cosine": cl,
                        "time_factor": tfac, "_cent": cent}
        if best is None or best["score"] < self.threshold:
            out = {"story_id": None, "score": best["score"] if best else None,
                   "nearest": best["story_id"] if best else None}
            if best:
                out["shared"] = top_shared(vec["M"], best["_cent"]["M"])
            return out
        best["shared"] = top_shared(vec["M"], best.pop("_cent")["M"])
        return best

    def learn(self, tf: dict) -> None:
        """Count an article in the IDF (originals only: copies would skew it)."""
        self.idf.add(tf)

    def add(self, item_id: str, tf: dict, timestamp: float, story_id: str | None) -> str:
        """Put an article into `story_id` (or a new story named after it); returns the story id."""
        sid = story_id or item_id
        st = self._stories.get(sid)
        if st is None:
            st = {"members": [], "first": timestamp, "last": timestamp, "centroid": None, "centroid_n": 0,
                  "acc": None}
            self._stories[sid] = st
        if len(st["members"]) < self.max_members:
            # Bounded: a story's early members define it; hundreds more would only
            # cost time (the centroid is stable by then).
            st["members"].append((item_id, tf, timestamp))
            vec = self._vector(tf)
            if st["acc"] is not None:
                self._accumulate(st, vec)
            st["centroid"] = None
            for k in self._index_keys(vec):
                self._postings[k].add(sid)
        st["first"] = min(st["first"], timestamp)
        if timestamp > st["last"]:
            st["last"] = timestamp
        heapq.heappush(self._expiry, (st["last"], sid))
        return sid

    def touch(self, sid: str, timestamp: float) -> None:
        """Keep a story alive (a copy of one of its articles arrived) without changing what it is about."""
        st = self._stories.get(sid)
        if st is not None and timestamp > st["last"]:
            st["last"] = timestamp
            heapq.heappush(self._expiry, (timestamp, sid))

    def evict_before(self, ts: float) -> int:
        """Drop stories whose latest article is older than `ts`."""
        n = 0
        while self._expiry and self._expiry[0][0] < ts:
            last, sid = heapq.heappop(self._expiry)
            st = self._stories.get(sid)
            if st is None or st["last"] >= ts:
                continue   # stale heap entry; the story was updated later
            del self._stories[sid]
            n += 1
            for _, tf, _ in st["members"]:
                for k in tf:
                    post = self._postings.get(k)
                    if post is not None:
                        post.discard(sid)
                        if not post:
                            del self._postings[k]
        return n
