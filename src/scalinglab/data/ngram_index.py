"""A reusable word-n-gram index of a training corpus, to mark evaluation items clean or dirty.

GPT-3 Appendix C: an evaluation item is *dirty* when one of its 13-grams (lowercased words,
punctuation removed) occurs in the training corpus; an item shorter than 13 words uses its
whole length as n (items under 8 words are never judged dirty), and n-grams that occur in more
than 10 training documents are ignored as too common to mean contamination.

On disk an index is a directory (no pickle)::

    header.json    {"format": "scalinglab.ngram_index", "version": 1, "n": 13, "min_n": 8,
                    "max_doc_freq": 10, "num_docs": ..., "num_words": ..., "num_grams": ...}
    words.npy      (W,) uint64  hash of every normalised word of the corpus, documents in order
    offsets.npy    (D+1,) int64 start of each document in words.npy
    grams.npy      (G,) uint64  sorted distinct n-gram hashes
    doc_freq.npy   (G,) uint32  number of documents containing each n-gram

The word stream lets the index answer the short-text rule: the m-grams (8 <= m < n) of the
corpus are derived from it on first use and cached in memory.

Example::

    index = NgramIndex.build(train_texts)
    index.save("corpus/ngram_index")
    NgramIndex.load("corpus/ngram_index").dirty(item_text)  # -> bool
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from scalinglab.data.text_hash import hash_words, ngram_hashes, normalize_words
from scalinglab.errors import ScalinglabError
from scalinglab.io import replace_dir

__all__ = ["NgramIndex", "normalize_words", "query_n"]

FORMAT = "scalinglab.ngram_index"


def query_n(num_words: int, n: int = 13, min_n: int = 8) -> int | None:
    """The gram length used for a text of ``num_words`` words (None: too short to judge)."""
    if num_words >= n:
        return n
    return num_words if num_words >= min_n else None


def _gram_table(words: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct n-gram hashes of the corpus and their document frequencies."""
    per_doc = [
        np.unique(ngram_hashes(words[offsets[d] : offsets[d + 1]], n))
        for d in range(len(offsets) - 1)
    ]
    flat = np.concatenate(per_doc) if per_doc else np.empty(0, np.uint64)
    grams, counts = np.unique(flat, return_counts=True)
    return grams, counts.astype(np.uint32)


class NgramIndex:
    """Distinct word n-grams of a corpus with document frequencies; see the module docstring."""

    def __init__(
        self, words: np.ndarray, offsets: np.ndarray, n: int = 13, min_n: int = 8,
        max_doc_freq: int | None = 10,
    ) -> None:
        self.words, self.offsets = words, offsets  # (W,) uint64, (D+1,) int64
        self.n, self.min_n, self.max_doc_freq = n, min_n, max_doc_freq
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def build(
        cls, texts: Iterable[str], n: int = 13, min_n: int = 8, max_doc_freq: int | None = 10
    ) -> NgramIndex:
        """Index ``texts`` (the training documents).

        Args:
            texts: training documents.
            n: gram length (13 as in GPT-3).
            min_n: shortest gram used for short queries (8 as in GPT-3).
            max_doc_freq: grams in more training documents than this are ignored (None: never).
        """
        chunks, lengths = [], [0]
        for text in texts:
            chunks.append(hash_words(normalize_words(text)))
            lengths.append(len(chunks[-1]))
        words = np.concatenate(chunks) if chunks else np.empty(0, np.uint64)
        index = cls(words, np.cumsum(lengths, dtype=np.int64), n, min_n, max_doc_freq)
        index.table(n)  # build the main table now, so save() writes it
        return index

    @property
    def num_docs(self) -> int:
        return len(self.offsets) - 1

    def table(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(sorted distinct n-gram hashes, document frequencies) for gram length ``n``."""
        if n not in self._tables:
            self._tables[n] = _gram_table(self.words, self.offsets, n)
        return self._tables[n]

    def matches(self, text: str) -> int:
        """Number of the text's n-grams (short-text rule applied) found in the corpus."""
        words = hash_words(normalize_words(text))
        n = query_n(len(words), self.n, self.min_n)
        if n is None:
            return 0
        grams, freq = self.table(n)
        if len(grams) == 0:
            return 0
        query = ngram_hashes(words, n)
        pos = np.minimum(np.searchsorted(grams, query), len(grams) - 1)
        found = grams[pos] == query
        if self.max_doc_freq is not None:
            found &= freq[pos] <= self.max_doc_freq
        return int(found.sum())

    def dirty(self, text: str) -> bool:
        """True when any n-gram of ``text`` (short-text rule applied) occurs in the corpus."""
        return self.matches(text) > 0

    def header(self) -> dict:
        return {
            "format": FORMAT, "version": 1, "n": self.n, "min_n": self.min_n,
            "max_doc_freq": self.max_doc_freq, "num_docs": self.num_docs,
            "num_words": int(len(self.words)), "num_grams": int(len(self.table(self.n)[0])),
        }

    def save(self, path: str | Path) -> None:
        """Write the index directory atomically (a temporary directory renamed into place)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        grams, freq = self.table(self.n)
        for name, arr in (("words", self.words), ("offsets", self.offsets),
                          ("grams", grams), ("doc_freq", freq)):
            np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
        (tmp / "header.json").write_text(json.dumps(self.header(), indent=2) + "\n")
        replace_dir(tmp, path)  # fsynced; the old index is deleted only after the rename

    @classmethod
    def load(cls, path: str | Path) -> NgramIndex:
        """Read an index written by :meth:`save`."""
        path = Path(path)
        try:
            header = json.loads((path / "header.json").read_text())
            arrays = {name: np.load(path / f"{name}.npy", allow_pickle=False)
                      for name in ("words", "offsets", "grams", "doc_freq")}
        except (OSError, ValueError) as e:
            raise ScalinglabError(f"{path}: not a readable n-gram index: {e}") from None
        if header.get("format") != FORMAT:
            raise ScalinglabError(f"{path}/header.json: format is not {FORMAT!r}")
        index = cls(arrays["words"], arrays["offsets"], header["n"], header["min_n"],
                    header["max_doc_freq"])
        index._tables[index.n] = (arrays["grams"], arrays["doc_freq"])
        return index
