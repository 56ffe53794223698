"""Near-duplicate (syndicated copy) detection over a recent time window.

One job: given an article's text, say whether it is a copy of an article seen
recently, and of which root original. Two levels:

1. exact: the sha256 of the normalised text (`textnorm.content_hash`) equals
   one seen before;
2. near: MinHash LSH (datasketch) over word shingles proposes candidates and a
   real similarity on the stored shingle sets verifies them.

Verification uses *containment* — |A ∩ B| / min(|A|, |B|) — rather than
Jaccard, because the usual syndication edits shrink or grow one side: a cut
ending, a teaser of the first part, a footer, dateline or editor's note added.
Reordered paragraphs only break the few shingles that span a paragraph
boundary. Two kinds of LSH keys are indexed so that candidates are found even
when the whole-text Jaccard is low (a teaser is a small fraction of the
original): one signature of the whole text and one of its first
`head_words` words.

Memory is bounded by the window: entries older than it are evicted. The LSH
band buckets live in sorted numpy arrays (`BandIndex`, ~12 bytes per band
entry instead of a Python bytes key and set per bucket) and an entry keeps only
its shingle sequence and paragraph numbers; its shingle set is re-derived when
it is verified as a candidate.
"""

from __future__ import annotations

import heapq
from datetime import datetime

import numpy as np
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from monitor.stages import textnorm

_PERMUTATIONS: dict[int, object] = {}


def _minhash(hashes: np.ndarray, num_perm: int) -> MinHash:
    # The shingles are already hashed to stable 32-bit ints; `int` as hashfunc
    # passes them through. Permutations are generated once per num_perm and
    # shared (datasketch would otherwise rebuild them for every object).
    perms = _PERMUTATIONS.get(num_perm)
    if perms is None:
        perms = MinHash(num_perm, hashfunc=int).permutations
        _PERMUTATIONS[num_perm] = perms
    m = MinHash(num_perm, hashfunc=int, permutations=perms, scheme="affine32")
    if len(hashes):
        m.update_batch(hashes.tolist())
    return m


def dedup_features(text: str, *, shingle_size: int = 3, head_words: int = 80,
                   max_words: int = 20000, straightened: bool = False) -> dict:
    """Everything copy detection needs from one text (pure; cheap to recompute on restart).

    `seq`/`para` keep the shingles in text order with the paragraph each starts
    in, so verification can tell "most of the text is shared" from "one long
    shared paragraph" (boilerplate appended to unrelated stories).
    `straightened=True` says `text` already went through `textnorm.straighten`.
    """
    # Straighten once (NFKC + quotes/dashes); paragraphs and the hash both use it.
    straight = text if straightened else textnorm.straighten(text)
    tokens: list[str] = []
    para_of: list[int] = []
    for i, p in enumerate(p for p in straight.split("\n") if p.strip()):
        toks = textnorm.words_of_straight(p)
        if len(tokens) + len(toks) > max_words:
            toks = toks[: max_words - len(tokens)]
        tokens.extend(toks)
        para_of.extend([i] * len(toks))
        if len(tokens) >= max_words:
            break
    seq = textnorm.shingle_sequence(tokens, shingle_size)
    para = para_of[: len(seq)] if len(tokens) >= shingle_size else para_of[:1]
    para = np.asarray(para, dtype=np.uint16 if (not para or para[-1] < 65535) else np.uint32)
    return {
        "hash": textnorm.hash_of_straight(straight),
        "n_words": len(tokens),
        "seq": seq,
        "para": para,
        "shingles": np.unique(seq),
        "head": textnorm.shingle_hashes(tokens[:head_words], shingle_size),
    }


def _paragraph_coverage(seq: np.ndarray, para: np.ndarray, other: np.ndarray,
                        min_para_shingles: int = 4) -> float:
    """Share of the paragraphs of one text that are mostly (≥ half) found in `other`.

    Paragraphs with fewer than `min_para_shingles` shingles (datelines, bylines,
    "Read more" footers) are ignored unless nothing else is left.
    """
    found = np.isin(seq, other, assume_unique=False).astype(np.float64)
    counts = np.bincount(para, minlength=int(para.max()) + 1 if len(para) else 0)
    hits = np.bincount(para, weights=found, minlength=len(counts))
    mask = counts >= min_para_shingles
    if not mask.any():
        mask = counts > 0
    if not mask.any():
        return 0.0
    return float(((hits[mask] / counts[mask]) >= 0.5).mean())


def _shingles(f: dict) -> np.ndarray:
    sh = f.get("shingles")
    return np.unique(f["seq"]) if sh is None else sh


def similarity(a: dict, b: dict) -> dict:
    """Containment, Jaccard and paragraph coverage of the smaller text in the larger."""
    sa, sb = _shingles(a), _shingles(b)
    if not len(sa) or not len(sb):
        return {"containment": 0.0, "jaccard": 0.0, "paragraphs": 0.0}
    inter = len(np.intersect1d(sa, sb, assume_unique=True))
    small, large_sh = (a, sb) if len(sa) <= len(sb) else (b, sa)
    return {
        "containment": inter / min(len(sa), len(sb)),
        "jaccard": inter / (len(sa) + len(sb) - inter),
        "paragraphs": _paragraph_coverage(small["seq"], small["para"], large_sh),
    }


def containment(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(containment of the smaller set in the larger, Jaccard) of two sorted unique hash arrays."""
    if not len(a) or not len(b):
        return 0.0, 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / min(len(a), len(b)), inter / (len(a) + len(b) - inter)


class BandIndex:
    """LSH buckets: which slots share a band key. Sorted numpy arrays plus a dict of recent inserts.

    Keys are 64-bit mixes of (band number, the band's MinHash values). Inserts go
    to a small dict and are merged into the sorted arrays in batches, so an
    entry costs ~12 bytes once merged. Removal only forgets the slot; dead
    slots are dropped at the next merge.
    """

    def __init__(self, min_merge: int = 16_384):
        self._keys = np.empty(0, dtype=np.uint64)
        self._slots = np.empty(0, dtype=np.int32)
        self._recent: dict[int, object] = {}    # key -> slot or list of slots
        self._recent_n = 0
        self._alive: set[int] = set()
        self._min_merge = min_merge

    def insert(self, slot: int, keys: np.ndarray) -> None:
        self._alive.add(slot)
        recent = self._recent
        for k in keys.tolist():
            v = recent.get(k)
            if v is None:
                recent[k] = slot
            elif isinstance(v, list):
                v.append(slot)
            else:
                recent[k] = [v, slot]
        self._recent_n += len(keys)
        if self._recent_n >= max(self._min_merge, len(self._keys) // 16):
            self._merge()

    def remove(self, slot: int) -> None:
        self._alive.discard(slot)

    def _merge(self) -> None:
        ks, ss = [], []
        for k, v in self._recent.items():
            if isinstance(v, list):
                ks.extend([k] * len(v))
                ss.extend(v)
            else:
                ks.append(k)
                ss.append(v)
        keys = np.concatenate([self._keys, np.array(ks, dtype=np.uint64)])
        slots = np.concatenate([self._slots, np.array(ss, dtype=np.int32)])
        alive = np.isin(slots, np.fromiter(self._alive, dtype=np.int32, count=len(self._alive)))
        keys, slots = keys[alive], slots[alive]
        order = np.argsort(keys, kind="stable")
        self._keys, self._slots = keys[order], slots[order]
        self._recent = {}
        self._recent_n = 0

    def query(self, keys: np.ndarray) -> set[int]:
        out: set[int] = set()
        if len(self._keys):
            lo = np.searchsorted(self._keys, keys, "left")
            hi = np.searchsorted(self._keys, keys, "right")
            for a, b in zip(lo[hi > lo].tolist(), hi[hi > lo].tolist()):
                out.update(self._slots[a:b].tolist())
        recent = self._recent
        for k in keys.tolist():
            v = recent.get(k)
            if v is not None:
                if isinstance(v, list):
                    out.update(v)
                else:
                    out.add(v)
        return out & self._alive

    def __len__(self) -> int:
        return len(self._alive)


class _Entry:
    __slots__ = ("root", "time", "hash", "feats", "slot")

    def __init__(self, root, time, hash_, feats, slot):
        self.root, self.time, self.hash, self.feats, self.slot = root, time, hash_, feats, slot


def _hash_key(hex_digest: str) -> int:
    # 64 bits of the sha256 are plenty to tell a window's texts apart and cost a
    # small int instead of a 64-character string.
    return int(hex_digest[:16], 16)


class NearDupIndex:
    """Exact-hash map + MinHash LSH over the articles of a recent window.

    `find` never mutates the index; `add` records an article with the root original it
    was attributed to, so that a copy of a copy still points at the root.
    """

    def __init__(self, *, num_perm: int = 128, lsh_threshold: float = 0.3,
                 min_words: int = 8, min_shingles: int = 15,
                 containment_threshold: float = 0.6, paragraph_threshold: float = 0.5):
        self.num_perm = num_perm
        self.min_words = min_words
        self.min_shingles = min_shingles
        self.containment_threshold = containment_threshold
        self.paragraph_threshold = paragraph_threshold
        # Same banding as datasketch.MinHashLSH(threshold, num_perm) would choose.
        self.bands, self.rows = _optimal_param(lsh_threshold, num_perm, 0.5, 0.5)
        rng = np.random.RandomState(7)
        self._mult = (rng.randint(1, 2**62, size=self.rows, dtype=np.int64).astype(np.uint64) * np.uint64(2)
                      + np.uint64(1))
        # Distinct offsets per band, and per signature kind (whole text, head).
        self._offsets = rng.randint(1, 2**62, size=2 * self.bands, dtype=np.int64).astype(np.uint64)
        self._lsh = BandIndex()
        self._by_hash: dict[int, str] = {}           # 64-bit content hash -> root id
        self._entries: dict[str, _Entry] = {}
        self._slot_ids: dict[int, str] = {}
        self._next_slot = 0
        self._expiry: list[tuple[float, str]] = []   # heap of (timestamp, id)

    def __len__(self) -> int:
        return len(self._entries)

    def root_of(self, item_id: str) -> str | None:
        e = self._entries.get(item_id)
        return e.root if e else None

    def _band_keys(self, feats: dict) -> np.ndarray:
        """LSH keys of the whole-text and head signatures (cached in `feats`)."""
        cache_key = ("lsh", self.num_perm, self.bands, self.rows)
        cached = feats.get("_lsh")
        if cached is not None and cached[0] == cache_key:
            return cached[1]
        n = self.bands * self.rows
        sig = np.concatenate([_minhash(feats["shingles"], self.num_perm).hashvalues[:n],
                              _minhash(feats["head"], self.num_perm).hashvalues[:n]])
        bands = sig.astype(np.uint64).reshape(2 * self.bands, self.rows)
        keys = (bands * self._mult).sum(axis=1, dtype=np.uint64) + self._offsets
        feats["_lsh"] = (cache_key, keys)
        return keys

    def find(self, feats: dict) -> dict | None:
        """Best copy match: {"root", "matched", "score", "method", "jaccard"} or None."""
        if feats["n_words"] < self.min_words:
            return None   # too little text to call anything a copy (e.g. "Video", failed extraction)
        root = self._by_hash.get(_hash_key(feats["hash"]))
        if root is not None:
            return {"root": root, "matched": root, "score": 1.0, "method": "exact-hash", "jaccard": 1.0}
        sh = feats["shingles"]
        if len(sh) < self.min_shingles:
            return None
        best = None
        for slot in self._lsh.query(self._band_keys(feats)):
            cid = self._slot_ids.get(slot)
            e = self._entries.get(cid) if cid is not None else None
            if e is None or e.feats is None:
                continue
            sim = similarity(feats, e.feats)
            if sim["containment"] >= self.containment_threshold and sim["paragraphs"] >= self.paragraph_threshold:
                key = (sim["containment"], sim["jaccard"], -e.time, cid)
                if best is None or key > best[0]:
                    best = (key, cid, e, sim)
        if best is None:
            return None
        _, cid, e, sim = best
        return {"root": e.root, "matched": cid, "score": round(sim["containment"], 4), "method": "minhash",
                "jaccard": round(sim["jaccard"], 4), "paragraphs": round(sim["paragraphs"], 4)}

    def add(self, item_id: str, feats: dict, root: str | None, timestamp: float) -> None:
        """Index an article; `root` is the original it copies (None if it is an original)."""
        if item_id in self._entries:
            return
        root = root or item_id
        hkey = _hash_key(feats["hash"])
        if feats["n_words"] >= self.min_words:
            self._by_hash.setdefault(hkey, root)
        entry = _Entry(root, timestamp, hkey, None, None)
        # Copies are indexed too: a later copy may match a copy better than the
        # original (e.g. the same cut), and it still resolves to the root.
        if len(feats["shingles"]) >= self.min_shingles:
            # Only what verification needs: the shingle set is re-derived from `seq`.
            entry.feats = {"seq": feats["seq"], "para": feats["para"]}
            entry.slot = slot = self._next_slot
            self._next_slot += 1
            self._slot_ids[slot] = item_id
            self._lsh.insert(slot, self._band_keys(feats))
        self._entries[item_id] = entry
        heapq.heappush(self._expiry, (timestamp, item_id))

    def reroot(self, old_root: str, new_root: str) -> list[str]:
        """Make `new_root` the root of every article rooted at `old_root`; returns those ids."""
        members = [i for i, e in self._entries.items() if e.root == old_root]
        for i in members:
            self._entries[i].root = new_root
        for h, root in list(self._by_hash.items()):
            if root == old_root:
                self._by_hash[h] = new_root
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
            if self._by_hash.get(e.hash) == e.root and e.root == item_id:
                del self._by_hash[e.hash]
            if e.slot is not None:
                self._lsh.remove(e.slot)
                del self._slot_ids[e.slot]
        return n
