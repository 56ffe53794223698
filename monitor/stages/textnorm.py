"""Text normalisation for comparing articles: normalise, hash, tokenise, shingle.

One job: turn raw article text into comparable units (a normalised string, its
content hash, word tokens, hashed word shingles). Used by exact-duplicate
detection (content hash), near-duplicate detection (shingles) and story
clustering (tokens).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib

import numpy as np

# Typographic variants that syndication commonly rewrites ("curly quotes
# straightened"); mapping them makes a copy hash and shingle like its original.
_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u00b4": "'", "`": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2212": "-",
        "\u00a0": " ", "\u200b": "", "\u200c": "", "\u200d": "", "\ufeff": "",
        "\u00ad": "",
    }
)
_WS = re.compile(r"\s+")
# A word: letters/digits, possibly joined by an apostrophe or a dot/comma inside
# a number ("U.S" stays two words, "1.5" and "800,000" stay one).
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*(?:[.,]\d+)*")


def straighten(text: str) -> str:
    """NFKC + straight quotes/dashes, original case and line breaks kept."""
    return unicodedata.normalize("NFKC", text or "").translate(_CHAR_MAP)


def normalize(text: str) -> str:
    """Canonical form for equality: NFKC, straight quotes/dashes, collapsed whitespace, case-folded."""
    return _WS.sub(" ", straighten(text)).strip().casefold()


def content_hash(text: str) -> str:
    """sha256 hex digest of the normalised text (exact-duplicate key)."""
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()


def hash_of_straight(straight: str) -> str:
    """`content_hash` of a text already passed through `straighten` (saves a second NFKC pass)."""
    # split/join collapses whitespace exactly as _WS.sub(" ", ...).strip() (both use str.isspace), faster.
    return hashlib.sha256(" ".join(straight.split()).casefold().encode("utf-8")).hexdigest()


def words_of_straight(straight: str) -> list[str]:
    """`words` of a text already passed through `straighten`."""
    return WORD.findall(straight.casefold())


def words(text: str, max_words: int | None = None) -> list[str]:
    """Case-folded word tokens of `text` (punctuation dropped), at most `max_words`."""
    norm = normalize(text)
    if max_words is None:
        return WORD.findall(norm)
    out = []
    for m in WORD.finditer(norm):
        out.append(m.group())
        if len(out) >= max_words:
            break
    return out


_TOKEN_HASHES: dict[str, int] = {}
# Odd 64-bit multipliers, one per position in a k-gram (fixed: hashes must be
# the same in every process and after a restart).
_POS_MULT = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                      0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
                     dtype=np.uint64)


def _token_hashes(tokens: list[str]) -> np.ndarray:
    cache = _TOKEN_HASHES
    out = [cache.get(t) for t in tokens]
    if None in out:
        if len(cache) > 100_000:
            cache.clear()
        for i, h in enumerate(out):
            if h is None:
                t = tokens[i]
                out[i] = cache[t] = zlib.crc32(t.encode("utf-8"))
    return np.array(out, dtype=np.uint64)


def shingle_sequence(tokens: list[str], k: int) -> np.ndarray:
    """32-bit hashes of the word k-grams of `tokens`, in text order (k-gram i starts at token i).

    Each word is hashed once with crc32 (stable across processes, unlike the
    salted hash()); a k-gram's hash mixes its words' hashes by position. This
    matters because signatures are rebuilt on restart and must match stored ones.
    A text shorter than k words yields one shingle of all its words.
    """
    if not tokens:
        return np.empty(0, dtype=np.uint32)
    if len(tokens) < k:
        return np.array([zlib.crc32(" ".join(tokens).encode("utf-8"))], dtype=np.uint32)
    th = _token_hashes(tokens)
    n = len(tokens) - k + 1
    h = np.zeros(n, dtype=np.uint64)
    for j in range(k):
        h += th[j : j + n] * _POS_MULT[j % len(_POS_MULT)] + np.uint64(j)
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return h.astype(np.uint32)


def shingle_hashes(tokens: list[str], k: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word k-grams of `tokens` (a shingle set)."""
    return np.unique(shingle_sequence(tokens, k))

