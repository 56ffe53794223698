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
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*(?:[.,]\d+)*")


def straighten(text: str) -> str:
    """NFKC + straight quotes/dashes, original case and line breaks kept."""
    return unicodedata.normalize("NFKC", text or "").translate(_CHAR_MAP)


def normalize(text: str) -> str:
    """Canonical form for equality: NFKC, straight quotes/dashes, collapsed whitespace, case-folded."""
    return _WS.sub(" ", straighten(text)).strip().casefold()


def content_hash(text: str) -> str:
    """sha256 hex digest of the normalised text (exact-duplicate key)."""
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()


def words(text: str, max_words: int | None = None) -> list[str]:
    """Case-folded word tokens of `text` (punctuation dropped), at most `max_words`."""
    norm = normalize(text)
    if max_words is None:
        return _WORD.findall(norm)
    out = []
    for m in _WORD.finditer(norm):
        out.append(m.group())
        if len(out) >= max_words:
            break
    return out


def shingle_sequence(tokens: list[str], k: int) -> np.ndarray:
    """32-bit hashes of the word k-grams of `tokens`, in text order (k-gram i starts at token i).

    crc32 is stable across processes (Python's hash() is salted), which matters
    because signatures are rebuilt on restart and must match stored ones.
    A text shorter than k words yields one shingle of all its words.
    """
    if not tokens:
        return np.empty(0, dtype=np.uint32)
    if len(tokens) < k:
        grams = [" ".join(tokens)]
    else:
        grams = [" ".join(tokens[i : i + k]) for i in range(len(tokens) - k + 1)]
    return np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.uint32, count=len(grams))


def shingle_hashes(tokens: list[str], k: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word k-grams of `tokens` (a shingle set)."""
    return np.unique(shingle_sequence(tokens, k))


def paragraphs(text: str) -> list[str]:
    """Non-empty lines/paragraphs of `text` (extractors emit one paragraph per line or per blank-line block)."""
    return [p for p in straighten(text).split("\n") if p.strip()]
