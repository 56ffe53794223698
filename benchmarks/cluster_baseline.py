"""Plain baselines for the clustering benchmarks: datasketch MinHashLSH for copies, TF-IDF nearest neighbour for stories.

What a first implementation would do with standard tools, over the same window:

- copies: `datasketch.MinHash` (128 permutations) of the article's word-3-gram set,
  `datasketch.MinHashLSH(threshold=0.5)` to find candidates, verified by the exact Jaccard
  (>= 0.5) of the shingle sets; entries older than the window are removed from the LSH;
- stories: TF-IDF (stop words removed, sublinear tf, IDF over the window's articles) and
  the nearest stored article by cosine through an inverted index of all terms; the article
  joins its neighbour's story when the cosine is >= 0.3 (a copy joins its original's story).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from datetime import datetime

from datasketch import MinHash, MinHashLSH

from monitor.clustering.stories import STOPWORDS
from monitor.stages import textnorm


class BaselineClusterer:
    """Copy detection + story assignment with off-the-shelf methods (see module docstring)."""

    def __init__(self, window_days: float = 7.0, num_perm: int = 128, lsh_threshold: float = 0.5,
                 copy_jaccard: float = 0.5, story_cosine: float = 0.3):
        self.window = window_days * 86400.0
        self.num_perm = num_perm
        self.lsh = MinHashLSH(threshold=lsh_threshold, num_perm=num_perm)
        self.copy_jaccard = copy_jaccard
        self.story_cosine = story_cosine
        self.shingles: dict[str, set[int]] = {}
        self.root: dict[str, str] = {}
        self.story: dict[str, str] = {}
        self.vectors: dict[str, dict[str, float]] = {}
        self.postings: dict[str, set[str]] = defaultdict(set)
        self.df: Counter = Counter()
        self.terms: dict[str, list[str]] = {}
        self.expiry: list[tuple[float, str]] = []

    def _evict(self, now: float) -> None:
        while self.expiry and self.expiry[0][0] < now - self.window:
            _, aid = heapq.heappop(self.expiry)
            if aid in self.shingles:
                self.lsh.remove(aid)
                del self.shingles[aid]
            for t in self.terms.pop(aid, ()):
                self.df[t] -= 1
                self.postings[t].discard(aid)
                if not self.df[t]:
                    del self.df[t], self.postings[t]
            self.vectors.pop(aid, None)

    def add(self, aid: str, title: str, text: str, published: datetime) -> tuple[str | None, str]:
        """(copy_of, story_id) of one article."""
        now = published.timestamp()
        self._evict(now)
        words = textnorm.words_of_straight(textnorm.straighten(text))
        sh = set(textnorm.shingle_sequence(words, 3).tolist())
        m = MinHash(num_perm=self.num_perm)
        m.update_batch([h.to_bytes(4, "little") for h in sh])
        copy_of = None
        best = 0.0
        for cand in self.lsh.query(m):
            other = self.shingles[cand]
            j = len(sh & other) / max(1, len(sh | other))
            if j >= self.copy_jaccard and j > best:
                best, copy_of = j, self.root[cand]
        if len(sh) >= 15:
            self.lsh.insert(aid, m)
            self.shingles[aid] = sh
            heapq.heappush(self.expiry, (now, aid))
        self.root[aid] = copy_of or aid
        if copy_of is not None:
            self.story[aid] = self.story.get(copy_of, copy_of)
            return copy_of, self.story[aid]
        terms = [w for w in textnorm.words_of_straight(textnorm.straighten(title + "\n" + text))
                 if w not in STOPWORDS and len(w) > 2]
        tf = Counter(terms)
        for t in tf:
            self.df[t] += 1
        n = len(self.terms) + 1
        vec = {t: (1 + math.log(c)) * math.log((n + 1) / (self.df[t] + 0.5)) for t, c in tf.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        vec = {t: v / norm for t, v in vec.items()}
        scores: dict[str, float] = defaultdict(float)
        for t, w in vec.items():
            for other in self.postings.get(t, ()):
                scores[other] += w * self.vectors[other][t]
        story = aid
        if scores:
            nearest = max(scores, key=scores.__getitem__)
            if scores[nearest] >= self.story_cosine:
                story = self.story[nearest]
        self.story[aid] = story
        self.vectors[aid] = vec
        self.terms[aid] = list(tf)
        for t in tf:
            self.postings[t].add(aid)
        if aid not in self.shingles:
            heapq.heappush(self.expiry, (now, aid))
        return None, story
