"""Near-duplicate (syndicated copy) detection over a recent time window.

One job: given an article's text, say whether it is a copy of an article seen
recently, and of which root original. Two levels:

1. exact: the sha256 of the normalised text (`textnorm.content_hash`) equals
   one seen before;
2. near: MinHash LSH over word shingles proposes candidates and a real
   similarity on the stored shingle sets verifies them.

Verification uses *containment* — |A ∩ B| / min(|A|, |B|) — rather than
Jaccard, because the usual syndication edits shrink or grow one side: a cut
ending, a teaser of the first part, a footer, dateline or editor's note added.
Reordered paragraphs only break the few shingles that span a paragraph
boundary. Two kinds of LSH keys are indexed so that candidates are found even
when the whole-text Jaccard is low (a teaser is a small fraction of the
original): one signature of the whole text and one of its first
`head_words` words.

Memory is bounded by the window: entries older than it are evicted. The LSH
band buckets live in a sorted numpy level (`BandIndex`, ~12 bytes per band
entry) plus a dict of the keys inserted since its last merge and an entry keeps its sorted unique shingles plus, per text position,
the index of its shingle and its paragraph number, so verification is a
`searchsorted` of one sorted array in another (no sort, no `np.unique` per
candidate).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache

import numpy as np

from monitor.stages import textnorm


class DuplicateMethod(StrEnum):
    """How a copy was recognised."""

    EXACT_HASH = "exact-hash"
    MINHASH = "minhash"


@dataclass(slots=True)
class CopyFeatures:
    """Everything copy detection needs from one text (pure; cheap to recompute on restart).

    `inv`/`para` give, for every shingle position in text order, the index of its
    hash in `shingles` and the paragraph it starts in, so verification can tell
    "most of the text is shared" from "one long shared paragraph" (boilerplate
    appended to unrelated stories). `band_keys` are the LSH keys under `banding`
    (filled by `Banding.keys`, in the extraction process when possible).
    """

    hash: str
    n_words: int
    shingles: np.ndarray      # sorted unique uint32 shingle hashes
    inv: np.ndarray           # per text position: index into `shingles`
    para: np.ndarray          # per text position: paragraph number
    head: np.ndarray          # sorted unique shingle hashes of the first `head_words` words
    band_keys: np.ndarray | None = None
    banding: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Similarity:
    containment: float   # share of the smaller text's shingles found in the larger
    jaccard: float
    paragraphs: float    # share of the smaller text's paragraphs mostly found in the larger


@dataclass(frozen=True, slots=True)
class CopyMatch:
    """The best earlier article a text copies, and the root original that one resolves to."""

    root: str
    matched: str
    score: float
    method: DuplicateMethod
    jaccard: float
    paragraphs: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["method"] = str(self.method)
        if d["paragraphs"] is None:
            del d["paragraphs"]
        return d


def _index_dtype(n: int):
    return np.uint16 if n <= 65535 else np.uint32


MAX_WORDS = 20_000   # copy features look at the first 20,000 words (bounds time on huge texts)


def paragraph_tokens(straight: str, max_words: int = MAX_WORDS) -> list[list[str]]:
    """`words_of_straight` tokens of each non-blank paragraph, until `max_words` tokens are reached."""
    out: list[list[str]] = []
    n = 0
    for p in straight.split("\n"):
        if p.strip():
            toks = textnorm.words_of_straight(p)
            out.append(toks)
            n += len(toks)
            if n >= max_words:
                break
    return out


def copy_features(text: str, *, shingle_size: int = 3, head_words: int = 80,
                  max_words: int = MAX_WORDS, straightened: bool = False,
                  para_tokens: list[list[str]] | None = None) -> CopyFeatures:
    """Shingles, paragraph map, head shingles and content hash of one text.

    `straightened=True` says `text` already went through `textnorm.straighten`;
    `para_tokens` are `paragraph_tokens(text, >= max_words)` when the caller already has them.
    """
    # Straighten once (NFKC + quotes/dashes); paragraphs and the hash both use it.
    straight = text if straightened else textnorm.straighten(text)
    if para_tokens is None:
        para_tokens = paragraph_tokens(straight, max_words)
    tokens: list[str] = []
    para_of: list[int] = []
    for i, toks in enumerate(para_tokens):
        if len(tokens) + len(toks) > max_words:
            toks = toks[: max_words - len(tokens)]
        tokens.extend(toks)
        para_of.extend([i] * len(toks))
        if len(tokens) >= max_words:
            break
    seq = textnorm.shingle_sequence(tokens, shingle_size)
    para = para_of[: len(seq)] if len(tokens) >= shingle_size else para_of[:1]
    shingles, inv = np.unique(seq, return_inverse=True)
    return CopyFeatures(
        hash=textnorm.hash_of_straight(straight),
        n_words=len(tokens),
        shingles=shingles,
        inv=inv.astype(_index_dtype(len(shingles))),
        para=np.asarray(para, dtype=_index_dtype(para[-1] if para else 0)),
        head=_head_shingles(seq, shingles, tokens, head_words, shingle_size),
    )


def _head_shingles(seq: np.ndarray, shingles: np.ndarray, tokens: list[str], head_words: int, k: int) -> np.ndarray:
    """`shingle_hashes(tokens[:head_words], k)` sliced out of the whole text's sequence (not rehashed)."""
    if len(tokens) <= head_words:
        return shingles                                         # the head is the whole text
    if head_words < k:
        return textnorm.shingle_hashes(tokens[:head_words], k)  # one hash of the head's few words
    return np.unique(seq[: head_words - k + 1])


def _members(small: np.ndarray, large: np.ndarray) -> np.ndarray:
    """Which elements of sorted unique `small` occur in sorted unique `large` (bool mask)."""
    if not len(large):
        return np.zeros(len(small), dtype=bool)
    pos = np.searchsorted(large, small)
    pos[pos == len(large)] = 0
    return large[pos] == small


def _paragraph_coverage(found_unique: np.ndarray, inv: np.ndarray, para: np.ndarray,
                        min_para_shingles: int = 4) -> float:
    """Share of the paragraphs of one text that are mostly (≥ half) found in the other.

    Paragraphs with fewer than `min_para_shingles` shingles (datelines, bylines,
    "Read more" footers) are ignored unless nothing else is left.
    """
    if not len(para):
        return 0.0
    found = found_unique[inv].astype(np.float64)
    counts = np.bincount(para)
    hits = np.bincount(para, weights=found, minlength=len(counts))
    mask = counts >= min_para_shingles
    if not mask.any():
        mask = counts > 0
    return float(((hits[mask] / counts[mask]) >= 0.5).mean())


def similarity(a: CopyFeatures, b: CopyFeatures) -> Similarity:
    """Containment, Jaccard and paragraph coverage of the smaller text in the larger."""
    sa, sb = a.shingles, b.shingles
    if not len(sa) or not len(sb):
        return Similarity(0.0, 0.0, 0.0)
    small, large = (a, b) if len(sa) <= len(sb) else (b, a)
    found = _members(small.shingles, large.shingles)
    inter = int(found.sum())
    return Similarity(
        containment=inter / len(small.shingles),
        jaccard=inter / (len(sa) + len(sb) - inter),
        paragraphs=_paragraph_coverage(found, small.inv, small.para) if inter else 0.0,
    )


def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm whose S-curve 1-(1-s^r)^b best splits at `threshold`.

    Minimises the area of false positives below the threshold plus false negatives
    above it (equal weights), the criterion MinHashLSH documents; computed here so
    no private API of datasketch is needed.
    """
    s = np.linspace(0.0, 1.0, 1001)
    below, above = s <= threshold, s >= threshold
    best, best_err = (1, num_perm), math.inf
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1.0 - (1.0 - s**r) ** b
            err = np.trapezoid(p[below], s[below]) + np.trapezoid(1.0 - p[above], s[above])
            if err < best_err:
                best, best_err = (b, r), err
    return best


class Banding:
    """MinHash signatures and LSH band keys with fixed parameters (the same in every process)."""

    def __init__(self, bands: int, rows: int, seed: int = 7):
        self.bands, self.rows = bands, rows
        rng = np.random.RandomState(seed)
        n = bands * rows
        # Multiply-shift hashing ((a*x + b) mod 2^64) >> 32 of 32-bit shingles: universal,
        # no modulo, and uint64 wrap-around is exactly the mod 2^64.
        self._a = rng.randint(1, 2**62, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.randint(0, 2**62, size=n, dtype=np.int64).astype(np.uint64)
        self._mult = (rng.randint(1, 2**62, size=rows, dtype=np.int64).astype(np.uint64) * np.uint64(2)
                      + np.uint64(1))
        # Distinct offsets per band and per signature kind (whole text, head).
        self._offsets = rng.randint(1, 2**62, size=2 * bands, dtype=np.int64).astype(np.uint64)

    @property
    def params(self) -> tuple[int, int]:
        return self.bands, self.rows

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        n = self.bands * self.rows
        if not len(hashes):
            return np.full(n, np.uint64(2**32), dtype=np.uint64)
        x = hashes.astype(np.uint64)[:, None]
        # >> 32 is monotone, so the minimum is taken first and only n values are shifted.
        h = x * self._a
        h += self._b
        return h.min(axis=0) >> np.uint64(32)

    def keys(self, feats: CopyFeatures) -> np.ndarray:
        """LSH keys of the whole-text and head signatures (stored on `feats`)."""
        if feats.band_keys is not None and feats.banding == self.params:
            return feats.band_keys
        sig = np.concatenate([self.signature(feats.shingles), self.signature(feats.head)])
        bands = sig.reshape(2 * self.bands, self.rows)
        feats.band_keys = (bands * self._mult).sum(axis=1, dtype=np.uint64) + self._offsets
        feats.banding = self.params
        return feats.band_keys


@lru_cache(maxsize=8)
def banding(num_perm: int, threshold: float) -> Banding:
    """The shared `Banding` for these parameters (built once per process)."""
    return Banding(*lsh_bands(threshold, num_perm))


class BandIndex:
    """LSH buckets: which slots share a band key; a sorted numpy level plus a dict of recent keys.

    Keys are 64-bit mixes of (band number, the band's MinHash values). An insert goes into
    the recent level, a dict key -> slot (a list when a key is shared): ~50 dict stores per
    article instead of shifting a sorted array. The recent level is merged into the large
    sorted level (~12 bytes per entry) when it reaches 1/16 of it, so inserts amortise to
    O(1) and memory stays near the arrays'. Removal only forgets the slot; dead slots are
    dropped at the next merge.
    """

    def __init__(self, min_merge: int = 16_384):
        self._keys = np.empty(0, dtype=np.uint64)
        self._slots = np.empty(0, dtype=np.int32)
        self._recent: dict[int, int | list[int]] = {}
        self._n_recent = 0
        self._alive: set[int] = set()
        self._min_merge = min_merge

    def insert(self, slot: int, keys: np.ndarray) -> None:
        self._alive.add(slot)
        recent = self._recent
        for k in keys.tolist():
            cur = recent.get(k)
            if cur is None:
                recent[k] = slot
            elif type(cur) is list:
                cur.append(slot)
            else:
                recent[k] = [cur, slot]
        self._n_recent += len(keys)
        if self._n_recent >= max(self._min_merge, len(self._keys) // 16):
            self._merge()

    def remove(self, slot: int) -> None:
        self._alive.discard(slot)

    def _merge(self) -> None:
        rk: list[int] = []
        rs: list[int] = []
        for k, v in self._recent.items():
            if type(v) is list:
                rk.extend([k] * len(v))
                rs.extend(v)
            else:
                rk.append(k)
                rs.append(v)
        keys = np.concatenate([self._keys, np.array(rk, dtype=np.uint64)])
        slots = np.concatenate([self._slots, np.array(rs, dtype=np.int32)])
        alive = np.isin(slots, np.fromiter(self._alive, dtype=np.int32, count=len(self._alive)))
        keys, slots = keys[alive], slots[alive]
        order = np.argsort(keys, kind="stable")
        self._keys, self._slots = keys[order], slots[order]
        self._recent = {}
        self._n_recent = 0

    def query(self, keys: np.ndarray) -> set[int]:
        out: set[int] = set()
        big = self._keys
        if len(big):
            # Sorted needles: each binary search starts where the last ended (fewer cache misses
            # in a ~700K-key array); the run ends are looked up for the few hits only.
            ks = np.sort(keys)
            lo = np.searchsorted(big, ks, "left")
            hit = big[np.minimum(lo, len(big) - 1)] == ks
            if hit.any():
                lo = lo[hit]
                hi = np.searchsorted(big, ks[hit], "right")
                slots = self._slots
                for a, b in zip(lo.tolist(), hi.tolist()):
                    out.update(slots[a:b].tolist())
        recent = self._recent
        for k in keys.tolist():
            v = recent.get(k)
            if v is not None:
                if type(v) is list:
                    out.update(v)
                else:
                    out.add(v)
        return out & self._alive

    def __len__(self) -> int:
        return len(self._alive)


@dataclass(slots=True)
class _Entry:
    root: str
    time: float
    hash: int
    feats: CopyFeatures | None   # None: too short to verify against
    slot: int | None


def _hash_key(hex_digest: str) -> int:
    # 64 bits of the sha256 are plenty to tell a window's texts apart and cost a
    # small int instead of a 64-character string.
    return int(hex_digest[:16], 16)


class NearDupIndex:
    """Exact-hash map + MinHash LSH over the articles of a recent window.

    `find` never mutates the index; `add` records an article with the root original it
    was attributed to, so that a copy of a copy still points at the root.
    """

    def __init__(self, *, num_perm: int = 128, lsh_threshold: float = 0.5,
                 min_words: int = 8, min_shingles: int = 15,
                 containment_threshold: float = 0.6, paragraph_threshold: float = 0.5):
        self.min_words = min_words
        self.min_shingles = min_shingles
        self.containment_threshold = containment_threshold
        self.paragraph_threshold = paragraph_threshold
        self.banding = banding(num_perm, lsh_threshold)
        self._lsh = BandIndex()
        self._by_hash: dict[int, str] = {}           # 64-bit content hash -> first article with it
        self._entries: dict[str, _Entry] = {}
        self._slot_ids: dict[int, str] = {}
        self._next_slot = 0
        self._expiry: list[tuple[float, str]] = []   # heap of (timestamp, id)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, feats: CopyFeatures) -> CopyMatch | None:
        """The best copy match of an article's features, or None."""
        if feats.n_words < self.min_words:
            return None   # too little text to call anything a copy (e.g. "Video", failed extraction)
        owner = self._by_hash.get(_hash_key(feats.hash))
        if owner is not None:
            root = self._entries[owner].root
            return CopyMatch(root=root, matched=owner, score=1.0, method=DuplicateMethod.EXACT_HASH, jaccard=1.0)
        if len(feats.shingles) < self.min_shingles:
            return None
        best = None
        for slot in self._lsh.query(self.banding.keys(feats)):
            cid = self._slot_ids.get(slot)
            e = self._entries.get(cid) if cid is not None else None
            if e is None or e.feats is None:
                continue
            sim = similarity(feats, e.feats)
            if sim.containment >= self.containment_threshold and sim.paragraphs >= self.paragraph_threshold:
                key = (sim.containment, sim.jaccard, -e.time, cid)
                if best is None or key > best[0]:
                    best = (key, cid, e, sim)
        if best is None:
            return None
        _, cid, e, sim = best
        return CopyMatch(root=e.root, matched=cid, score=round(sim.containment, 4), method=DuplicateMethod.MINHASH,
                         jaccard=round(sim.jaccard, 4), paragraphs=round(sim.paragraphs, 4))

    def add(self, item_id: str, feats: CopyFeatures, root: str | None, timestamp: float) -> None:
        """Index an article; `root` is the original it copies (None if it is an original)."""
        if item_id in self._entries:
            return
        root = root or item_id
        hkey = _hash_key(feats.hash)
        if feats.n_words >= self.min_words:
            self._by_hash.setdefault(hkey, item_id)
        entry = _Entry(root, timestamp, hkey, None, None)
        # Copies are indexed too: a later copy may match a copy better than the
        # original (e.g. the same cut), and it still resolves to the root.
        if len(feats.shingles) >= self.min_shingles:
            keys = self.banding.keys(feats)
            # Only what verification needs (the head and keys are not looked at again).
            entry.feats = CopyFeatures(hash="", n_words=feats.n_words, shingles=feats.shingles, inv=feats.inv,
                                       para=feats.para, head=_EMPTY)
            entry.slot = slot = self._next_slot
            self._next_slot += 1
            self._slot_ids[slot] = item_id
            self._lsh.insert(slot, keys)
        self._entries[item_id] = entry
        heapq.heappush(self._expiry, (timestamp, item_id))

    def reroot(self, old_root: str, new_root: str) -> list[str]:
        """Make `new_root` the root of every article rooted at `old_root`; returns those ids."""
        members = [i for i, e in self._entries.items() if e.root == old_root]
        for i in members:
            self._entries[i].root = new_root   # the exact-hash map follows: it names entries, not roots
        return members

    def evict_before(self, t: datetime | float) -> int:
        """Forget articles published before `t`; returns how many were dropped."""
        ts = t.timestamp() if isinstance(t, datetime) else t
        n = 0
        while self._expiry and self._expiry[0][0] < ts:
            _, item_id = heapq.heappop(self._expiry)
            e = self._entries.pop(item_id, None)
            if e is None:
                continue
            n += 1
            if self._by_hash.get(e.hash) == item_id:
                del self._by_hash[e.hash]
            if e.slot is not None:
                self._lsh.remove(e.slot)
                del self._slot_ids[e.slot]
        return n


_EMPTY = np.empty(0, dtype=np.uint32)
