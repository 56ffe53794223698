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

Memory is bounded by the window: entries older than it are evicted.
"""

from __future__ import annotations

import heapq
from datetime import datetime

import numpy as np
from datasketch import MinHash, MinHashLSH

from . import textnorm

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
                   max_words: int = 20000) -> dict:
    """Everything copy detection needs from one text (pure; cheap to recompute on restart).

    `seq`/`para` keep the shingles in text order with the paragraph each starts
    in, so verification can tell "most of the text is shared" from "one long
    shared paragraph" (boilerplate appended to unrelated stories).
    """
    tokens: list[str] = []
    para_of: list[int] = []
    for i, p in enumerate(textnorm.paragraphs(text)):
        toks = textnorm.words(p, max_words=max_words - len(tokens))
        tokens.extend(toks)
        para_of.extend([i] * len(toks))
        if len(tokens) >= max_words:
            break
    seq = textnorm.shingle_sequence(tokens, shingle_size)
    para = np.asarray(para_of[: len(seq)] if len(tokens) >= shingle_size else para_of[:1], dtype=np.uint32)
    return {
        "hash": textnorm.content_hash(text),
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


def similarity(a: dict, b: dict) -> dict:
    """Containment, Jaccard and paragraph coverage of the smaller text in the larger."""
    sa, sb = a["shingles"], b["shingles"]
    if not len(sa) or not len(sb):
        return {"containment": 0.0, "jaccard": 0.0, "paragraphs": 0.0}
    inter = len(np.intersect1d(sa, sb, assume_unique=True))
    small, large = (a, b) if len(sa) <= len(sb) else (b, a)
    return {
        "containment": inter / min(len(sa), len(sb)),
        "jaccard": inter / (len(sa) + len(sb) - inter),
        "paragraphs": _paragraph_coverage(small["seq"], small["para"], large["shingles"]),
    }


def containment(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(containment of the smaller set in the larger, Jaccard) of two sorted unique hash arrays."""
    if not len(a) or not len(b):
        return 0.0, 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / min(len(a), len(b)), inter / (len(a) + len(b) - inter)


class NearDupIndex:
    """Exact-hash map + MinHash LSH over the articles of a recent window.

    `find` never mutates; `add` records an article with the root original it
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
        self._lsh_full = MinHashLSH(threshold=lsh_threshold, num_perm=num_perm)
        self._lsh_head = MinHashLSH(threshold=lsh_threshold, num_perm=num_perm)
        self._by_hash: dict[str, str] = {}           # content hash -> root id
        self._entries: dict[str, dict] = {}          # id -> {shingles, root, time, hash}
        self._expiry: list[tuple[float, str]] = []   # heap of (timestamp, id)

    def __len__(self) -> int:
        return len(self._entries)

    def root_of(self, item_id: str) -> str | None:
        e = self._entries.get(item_id)
        return e["root"] if e else None

    def find(self, feats: dict) -> dict | None:
        """Best copy match: {"root", "matched", "score", "method", "jaccard"} or None."""
        if feats["n_words"] < self.min_words:
            return None   # too little text to call anything a copy (e.g. "Video", failed extraction)
        root = self._by_hash.get(feats["hash"])
        if root is not None:
            return {"root": root, "matched": root, "score": 1.0, "method": "exact-hash", "jaccard": 1.0}
        sh = feats["shingles"]
        if len(sh) < self.min_shingles:
            return None
        full = _minhash(sh, self.num_perm)
        head = _minhash(feats["head"], self.num_perm)
        cands = set(self._lsh_full.query(full)) | set(self._lsh_head.query(head))
        best = None
        for cid in cands:
            e = self._entries.get(cid)
            if e is None:
                continue
            if e["feats"] is None:
                continue
            sim = similarity(feats, e["feats"])
            if sim["containment"] >= self.containment_threshold and sim["paragraphs"] >= self.paragraph_threshold:
                key = (sim["containment"], sim["jaccard"], -e["time"])
                if best is None or key > best[0]:
                    best = (key, cid, e, sim)
        if best is None:
            return None
        _, cid, e, sim = best
        return {"root": e["root"], "matched": cid, "score": round(sim["containment"], 4), "method": "minhash",
                "jaccard": round(sim["jaccard"], 4), "paragraphs": round(sim["paragraphs"], 4)}

    def add(self, item_id: str, feats: dict, root: str | None, timestamp: float) -> None:
        """Index an article; `root` is the original it copies (None if it is an original)."""
        if item_id in self._entries:
            return
        root = root or item_id
        if feats["n_words"] >= self.min_words:
            self._by_hash.setdefault(feats["hash"], root)
        entry = {"root": root, "time": timestamp, "hash": feats["hash"], "feats": None}
        # Copies are indexed too: a later copy may match a copy better than the
        # original (e.g. the same cut), and it still resolves to the root.
        if len(feats["shingles"]) >= self.min_shingles:
            # Only what verification needs; `shingles` is rebuilt from `seq` on demand
            # would save memory but costs a sort per candidate — kept for speed.
            entry["feats"] = {"seq": feats["seq"], "para": feats["para"], "shingles": feats["shingles"]}
            self._lsh_full.insert(item_id, _minhash(feats["shingles"], self.num_perm))
            self._lsh_head.insert(item_id, _minhash(feats["head"], self.num_perm))
        self._entries[item_id] = entry
        heapq.heappush(self._expiry, (timestamp, item_id))

    def reroot(self, old_root: str, new_root: str) -> list[str]:
        """Make `new_root` the root of every article rooted at `old_root`; returns those ids."""
        members = [i for i, e in self._entries.items() if e["root"] == old_root]
        for i in members:
            self._entries[i]["root"] = new_root
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
            if self._by_hash.get(e["hash"]) == e["root"] and e["root"] == item_id:
                del self._by_hash[e["hash"]]
            if e["feats"] is not None:
                self._lsh_full.remove(item_id)
                self._lsh_head.remove(item_id)
        return n
