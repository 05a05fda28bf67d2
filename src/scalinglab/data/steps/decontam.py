"""Evaluation-set decontamination of the training corpus (GPT-3 Appendix C).

Every word n-gram (13-gram; lowercased words, punctuation removed) that occurs in an
evaluation item is cut out of the training documents together with ``window_chars`` characters
on each side. The pieces left are kept as separate documents when at least
``min_fragment_chars`` long; a document cut more than ``max_splits`` times is dropped whole.
N-grams found in more than ``max_doc_freq`` training documents are left alone (common phrases,
not contamination). Evaluation items shorter than n words use their whole length as n (at least
``min_n`` words; shorter items cannot be matched and are counted as such).

Evaluation sets are JSONL files; every string in an item (``text``, ``question``, ``context``,
``choices``, ``answer``, nested lists and objects ...) is joined into the item's text. Stats
report, per evaluation set, how many items collided with the corpus.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.config import Config, ConfigError
from scalinglab.data.document import Document
from scalinglab.data.ngram_index import query_n
from scalinglab.data.steps.base import PipelineStep
from scalinglab.data.text_hash import hash_words, ngram_hashes, normalize_words, word_spans
from scalinglab.errors import ScalinglabError


@dataclasses.dataclass
class DecontamConfig(Config):
    """Decontamination settings (defaults are GPT-3's)."""

    eval_sets: list[str] = dataclasses.field(default_factory=list)
    """JSONL files of evaluation items; empty disables the step."""
    n: int = 13
    """Gram length in normalised words."""
    min_n: int = 8
    """Shortest evaluation item (in words) that is matched, with its whole length as n."""
    window_chars: int = 200
    """Characters removed on each side of a matching n-gram."""
    min_fragment_chars: int = 200
    """Pieces of a cut document shorter than this are dropped."""
    max_splits: int = 10
    """A document cut more than this many times is dropped whole."""
    max_doc_freq: int = 10
    """N-grams found in more training documents than this are ignored."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_n <= self.n:
            raise ConfigError(f"DecontamConfig: need 1 <= min_n ({self.min_n}) <= n ({self.n})")
        for name in ("window_chars", "min_fragment_chars", "max_splits", "max_doc_freq"):
            if getattr(self, name) < 0:
                raise ConfigError(f"DecontamConfig.{name}={getattr(self, name)}: must be >= 0")


def item_text(item: Any) -> str:
    """All strings of a JSON value (object fields, list entries), joined by newlines."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        item = list(item.values())
    if isinstance(item, list):
        return "\n".join(t for t in (item_text(v) for v in item) if t)
    return ""


def read_eval_set(path: str | Path) -> list[str]:
    """Item texts of one JSONL evaluation set; a malformed line is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise ScalinglabError(f"{path}: evaluation set not found")
    texts = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ScalinglabError(f"{path}: not valid UTF-8") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            texts.append(item_text(json.loads(line)))
        except json.JSONDecodeError as e:
            raise ScalinglabError(f"{path}:{lineno}: invalid JSON: {e.msg}") from None
    return texts


class EvalGrams:
    """The n-grams of all evaluation items, grouped by gram length, with their owners."""

    def __init__(self, sets: dict[str, list[str]], n: int = 13, min_n: int = 8) -> None:
        self.set_names = list(sets)
        self.items = {name: len(texts) for name, texts in sets.items()}
        self.too_short = Counter()
        grams: dict[int, list[np.ndarray]] = {}
        owners: dict[int, list[np.ndarray]] = {}
        self.owner_set: list[int] = []  # item number -> index of its set
        for s, texts in enumerate(sets.values()):
            for text in texts:
                words = hash_words(normalize_words(text))
                m = query_n(len(words), n, min_n)
                if m is None:
                    self.too_short[self.set_names[s]] += 1
                    continue
                g = np.unique(ngram_hashes(words, m))
                grams.setdefault(m, []).append(g)
                owners.setdefault(m, []).append(np.full(len(g), len(self.owner_set)))
                self.owner_set.append(s)
        # per gram length: sorted gram hashes (G,) and the item owning each (G,)
        self.tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for m in grams:
            flat, own = np.concatenate(grams[m]), np.concatenate(owners[m])
            order = np.argsort(flat, kind="stable")
            self.tables[m] = (flat[order], own[order])

    def find(self, word_hash: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Matches in one training document: [(n, start word positions (K,), gram hashes (K,))]."""
        out = []
        for m, (grams, _) in self.tables.items():
            g = ngram_hashes(word_hash, m)
            pos = np.minimum(np.searchsorted(grams, g), len(grams) - 1)
            hit = grams[pos] == g
            if hit.any():
                out.append((m, np.flatnonzero(hit), g[hit]))
        return out

    def owners(self, m: int, gram_hashes: np.ndarray) -> np.ndarray:
        """Items (indices) that contain any of ``gram_hashes`` of length m."""
        grams, own = self.tables[m]
        lo = np.searchsorted(grams, gram_hashes, side="left")
        hi = np.searchsorted(grams, gram_hashes, side="right")
        return np.unique(np.concatenate([own[a:b] for a, b in zip(lo, hi, strict=True)]))


def cut_ranges(spans: list[tuple[int, int]], hits: list[tuple[int, int]], window: int,
               length: int) -> list[tuple[int, int]]:
    """Merged character ranges to remove: each hit (first word, n words) plus the window."""
    ranges = sorted((max(spans[w][0] - window, 0), min(spans[w + n - 1][1] + window, length))
                    for w, n in hits)
    merged: list[tuple[int, int]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


class Decontaminate(PipelineStep):
    """Cut evaluation-set n-grams out of the corpus; see the module docstring.

    The document-frequency rule needs the whole corpus before any cut: call ``scan`` on all
    training documents first (the pipeline does, over its raw input), then ``run`` streams.
    Without a scan, ``run`` reads all of its input (holding it in memory) and scans that.
    ``report()`` gives, per evaluation set, its items and how many collided with the scanned
    corpus (n-grams above the frequency limit excepted).
    """

    name = "decontaminate"

    def __init__(self, cfg: DecontamConfig, sets: dict[str, list[str]] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        if sets is None:
            names = [Path(p).stem for p in cfg.eval_sets]
            if len(set(names)) != len(names):
                raise ScalinglabError(f"decontam.eval_sets: two files share a name in {names}")
            sets = {name: read_eval_set(p) for name, p in zip(names, cfg.eval_sets, strict=True)}
        self.sets = sets  # name -> item texts
        self.eval = EvalGrams(sets, cfg.n, cfg.min_n)
        self.frequent: set[tuple[int, int]] | None = None  # (n, gram hash) ignored as common
        self._collided: set[int] = set()  # items with a (not too common) gram in the corpus
        self._ignored: Counter[int] = Counter()  # set index -> its grams ignored as common

    def scan(self, docs: Iterable[Document]) -> None:
        """Count, over the training corpus, the documents holding each evaluation n-gram."""
        self.set_doc_freq(self.doc_freq(docs))

    def doc_freq(self, docs: Iterable[Document]) -> Counter[tuple[int, int]]:
        """Documents of ``docs`` holding each evaluation n-gram ``(n, gram hash)``: the part of
        ``scan`` that shards (tasks count their own documents, the sums are added)."""
        doc_freq: Counter[tuple[int, int]] = Counter()
        for doc in docs:
            hits = self.eval.find(hash_words(normalize_words(doc.text)))
            doc_freq.update({(m, int(g)) for m, _, gs in hits for g in gs})
        return doc_freq

    def set_doc_freq(self, doc_freq: Counter[tuple[int, int]]) -> None:
        """Take the corpus-wide document frequencies (from ``doc_freq``, summed over shards)."""
        self.frequent = {key for key, c in doc_freq.items() if c > self.cfg.max_doc_freq}
        by_n: dict[int, list[int]] = {}
        for m, g in doc_freq.keys() - self.frequent:
            by_n.setdefault(m, []).append(g)
        self._collided = set()
        for m, grams in by_n.items():
            self._collided.update(self.eval.owners(m, np.array(grams, np.uint64)).tolist())
        self._ignored = Counter()
        for m, g in self.frequent:
            items = self.eval.owners(m, np.array([g], np.uint64))
            self._ignored.update({self.eval.owner_set[i] for i in items.tolist()})

    def report(self) -> dict[str, dict[str, int]]:
        """Per evaluation set: items, items too short to match, items that collided, and its
        n-grams left alone because they are in more than ``max_doc_freq`` training documents."""
        per_set = Counter(self.eval.owner_set[i] for i in self._collided)
        return {name: {"items": self.eval.items[name], "too_short_items": self.eval.too_short[name],
                       "collided_items": per_set[s], "grams_ignored_frequent": self._ignored[s]}
                for s, name in enumerate(self.eval.set_names)}

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        if self.frequent is None:
            docs = list(docs)
            self.scan(docs)
        assert self.frequent is not None
        for doc in docs:
            nbytes = len(doc.text.encode("utf-8"))
            self.stats.add("in", 1, nbytes)
            hits = self.eval.find(hash_words(normalize_words(doc.text)))
            kept = [(int(w), m) for m, starts, grams in hits
                    for w, g in zip(starts, grams, strict=True)
                    if (m, int(g)) not in self.frequent]
            yield from self._cut(doc, word_spans(doc.text)[1] if kept else [], kept)

    def _cut(self, doc: Document, spans, hits: list[tuple[int, int]]) -> Iterator[Document]:
        nbytes = len(doc.text.encode("utf-8"))
        if not hits:
            self.stats.add("out", 1, nbytes)
            yield doc
            return
        self.stats.add("contaminated", 1, nbytes)
        ranges = cut_ranges(spans, hits, self.cfg.window_chars, len(doc.text))
        if len(ranges) > self.cfg.max_splits:
            self.stats.add("dropped.too_many_splits", 1, nbytes)
            return
        bounds = [0] + [x for r in ranges for x in r] + [len(doc.text)]
        pieces = [doc.text[a:b] for a, b in zip(bounds[0::2], bounds[1::2], strict=True)]
        removed = sum(b - a for a, b in ranges)
        self.stats.counts["removed_chars"] += removed
        for k, piece in enumerate(pieces):
            size = len(piece.encode("utf-8"))
            if len(piece.strip()) < self.cfg.min_fragment_chars:
                if piece.strip():
                    self.stats.add("dropped.short_fragment", 1, size)
                continue
            self.stats.add("out", 1, size)
            yield Document(piece.strip(), f"{doc.id}#{k}", doc.source,
                           {**doc.metadata, "decontam_fragment": k})
