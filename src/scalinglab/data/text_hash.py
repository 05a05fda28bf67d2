"""Word normalisation and stable 64-bit hashing of words and word n-grams (numpy, vectorised).

Dedup (word 5-gram shingles), decontamination and the n-gram index all see text the same way:
lowercased words with punctuation removed (GPT-3 Appendix C). Hashes are stable across
processes and machines (blake2b per distinct word, then integer arithmetic in numpy), so an
index saved today matches text hashed tomorrow.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

_TOKEN = re.compile(r"\S+")
_PUNCT = re.compile(r"[\W_]+")  # everything that is not a letter or digit
_STRIP = re.compile(r"[^\w\s]+|_+")  # same, but keeps whitespace (whole-text version)

# NOTE: uint64 arithmetic in numpy wraps modulo 2**64 without warnings for arrays; the
# polynomial n-gram hash and the splitmix64 finaliser rely on that.
_MULT = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)

_WORD_CACHE: dict[str, int] = {}
_WORD_CACHE_MAX = 2_000_000  # distinct words kept before the cache is reset (bounds memory)


def word_spans(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Normalised words of ``text`` and the character span of each in ``text``.

    A word is a whitespace-separated token, lowercased, with every non-alphanumeric character
    removed; tokens that are pure punctuation vanish.
    """
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    for m in _TOKEN.finditer(text):
        w = _PUNCT.sub("", m.group().lower())
        if w:
            words.append(w)
            spans.append(m.span())
    return words, spans


def normalize_words(text: str) -> list[str]:
    """Lowercased words with punctuation removed: the grams of dedup and decontamination.

    Same words as :func:`word_spans`, but one regex pass over the whole text (much faster).
    """
    return _STRIP.sub("", text.lower()).split()


def _blake64(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def hash_words(words: list[str]) -> np.ndarray:
    """Stable 64-bit hash per word. Returns (len(words),) uint64."""
    cache = _WORD_CACHE
    if len(cache) > _WORD_CACHE_MAX:
        cache.clear()
    for w in set(words).difference(cache):
        cache[w] = _blake64(w)
    return np.fromiter(map(cache.__getitem__, words), dtype=np.uint64, count=len(words))


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast bijective mixer of uint64 arrays (any shape)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _C1
    x = x ^ (x >> np.uint64(27))
    x = x * _C2
    return x ^ (x >> np.uint64(31))


def ngram_hashes(word_hash: np.ndarray, n: int) -> np.ndarray:
    """Hash of every window of ``n`` consecutive words.

    Args:
        word_hash: (L,) uint64 from :func:`hash_words`.
        n: n-gram length (>= 1).
    Returns:
        (max(L - n + 1, 0),) uint64; entry j hashes words j .. j+n-1 (order-sensitive).
    """
    count = len(word_hash) - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    h = np.zeros(count, dtype=np.uint64)
    for k in range(n):  # polynomial hash: h = (...(w0*M + w1)*M + ...) mod 2**64
        h = h * _MULT + word_hash[k : k + count]
    return mix64(h ^ np.uint64(n))  # n in the hash: an 8-gram never equals a 13-gram
