"""Deduplication steps: exact (normalised-text hash) and near-duplicate (MinHash LSH).

Near-duplicates follow Broder's MinHash over word 5-gram shingles with LSH banding, plus one
check per candidate pair: its estimated Jaccard (share of equal signature values) must reach
``verify_threshold``. Banding alone cannot separate Jaccard 0.8 from 0.5 with a modest number
of permutations (b=20 x r=6 flags 27% of pairs at J=0.5); the check makes the curve steep
(see ``benchmarks/dedup_scurve.py``). Documents linked by verified pairs form clusters
(connected components); the first document of each cluster, in input order, is kept.

The signatures are computed with vectorised numpy (multiply-shift hashing per permutation over all
shingles of a batch at once); see the README for why this and not datasketch / datatrove.
"""

from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from collections.abc import Iterable, Iterator

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from scalinglab.config import Config, ConfigError
from scalinglab.data.document import Document
from scalinglab.data.steps.base import PipelineStep
from scalinglab.data.text_hash import hash_words, mix64, ngram_hashes, normalize_words

_BATCH_SHINGLES = 1 << 15  # shingles hashed per numpy batch: (P, 32768) uint64 = 32 MB at P=128


@dataclasses.dataclass
class MinHashConfig(Config):
    """Near-duplicate detection settings."""

    ngram: int = 5
    """Shingle size in normalised words (documents shorter than this use all their words)."""
    num_bands: int = 20
    """LSH bands b; with ``rows_per_band`` r the signature has b*r permutations."""
    rows_per_band: int = 6
    """LSH rows per band r: two documents are candidates when all r values of a band agree."""
    verify_threshold: float = 0.65
    """Estimated Jaccard a candidate pair needs to count as duplicate; 0 keeps every candidate."""
    seed: int = 1
    """Seed of the permutation family (signatures are only comparable for the same seed)."""

    def __post_init__(self) -> None:
        for name in ("ngram", "num_bands", "rows_per_band"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MinHashConfig.{name}={getattr(self, name)}: must be >= 1")
        if not 0.0 <= self.verify_threshold <= 1.0:
            raise ConfigError(f"MinHashConfig.verify_threshold={self.verify_threshold}: "
                              "must be in [0, 1]")

    @property
    def num_perm(self) -> int:
        return self.num_bands * self.rows_per_band


@dataclasses.dataclass
class DedupConfig(Config):
    """Which deduplication steps ``prepare`` runs (after the quality filters)."""

    exact: bool = True
    """Drop exact duplicates (normalised-text hash)."""
    near: bool = True
    """Drop near-duplicates (MinHash LSH), keeping one document per cluster."""
    minhash: MinHashConfig = dataclasses.field(default_factory=MinHashConfig)

    def build(self) -> list[PipelineStep]:
        steps: list[PipelineStep] = []
        if self.exact:
            steps.append(ExactDedup())
        if self.near:
            steps.append(MinHashDedup(self.minhash))
        return steps


def normalize_text(text: str) -> str:
    """Text as compared by exact dedup: NFKC, lowercased, whitespace runs collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


class ExactDedup(PipelineStep):
    """Drop documents whose normalised text was already seen (the first copy is kept)."""

    name = "exact_dedup"

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[bytes] = set()

    @staticmethod
    def _digest(doc: Document) -> bytes:
        return hashlib.blake2b(normalize_text(doc.text).encode(), digest_size=16).digest()

    def restore(self, doc: Document) -> None:
        """Remember a document kept by an earlier (resumed) run."""
        self._seen.add(self._digest(doc))

    def process(self, doc: Document) -> Iterable[Document]:
        digest = self._digest(doc)
        if digest in self._seen:
            self.stats.add("dropped.exact_duplicate", 1, len(doc.text.encode("utf-8")))
            return
        self._seen.add(digest)
        yield doc


class MinHasher:
    """MinHash signatures of documents: (num_perm,) uint32 per document."""

    def __init__(self, num_perm: int = 120, ngram: int = 5, seed: int = 1) -> None:
        self.num_perm, self.ngram = num_perm, ngram
        rng = np.random.default_rng(seed)
        # h_k(x) = a_k * x + b_k mod 2**64, top 32 bits (multiply-shift hashing of the already
        # well-mixed shingle hashes: 2 numpy ops per value instead of a full mixer).
        self.mult = rng.integers(0, 2**63, size=(num_perm, 1), dtype=np.uint64) * 2 + 1  # odd
        self.add = rng.integers(0, 2**63, size=(num_perm, 1), dtype=np.uint64)  # (P, 1)

    def shingles(self, text: str) -> np.ndarray:
        """Distinct word-n-gram hashes of ``text``: (S,) uint64, S = 0 for a text with no words."""
        words = hash_words(normalize_words(text))
        n = min(self.ngram, len(words))
        return np.unique(ngram_hashes(words, n)) if n else np.empty(0, dtype=np.uint64)

    def signatures(self, shingle_sets: list[np.ndarray]) -> np.ndarray:
        """Signatures of many documents. Returns (N, P) uint32; rows of empty sets are all max."""
        sig = np.full((len(shingle_sets), self.num_perm), np.iinfo(np.uint32).max, np.uint32)
        batch: list[int] = []
        size = 0
        for i, s in enumerate(shingle_sets):
            if len(s) == 0:
                continue
            if len(s) > _BATCH_SHINGLES:  # one long document: its own chunks bound the memory
                sig[i] = self._long_signature(s)
                continue
            batch.append(i)
            size += len(s)
            if size >= _BATCH_SHINGLES:
                self._fill(sig, batch, shingle_sets)
                batch, size = [], 0
        if batch:
            self._fill(sig, batch, shingle_sets)
        return sig

    def _long_signature(self, shingles: np.ndarray) -> np.ndarray:
        mins = np.full(self.num_perm, np.iinfo(np.uint64).max, np.uint64)
        for start in range(0, len(shingles), _BATCH_SHINGLES):
            chunk = np.multiply(self.mult, shingles[None, start : start + _BATCH_SHINGLES])
            chunk += self.add
            np.minimum(mins, chunk.min(axis=1), out=mins)
        return (mins >> np.uint64(32)).astype(np.uint32)

    def _fill(self, sig: np.ndarray, rows: list[int], shingle_sets: list[np.ndarray]) -> None:
        flat = np.concatenate([shingle_sets[i] for i in rows])  # (S,)
        starts = np.cumsum([0] + [len(shingle_sets[i]) for i in rows[:-1]])
        mixed = np.multiply(self.mult, flat[None, :])  # (P, S): one hash function per row
        mixed += self.add
        mins = np.minimum.reduceat(mixed, starts, axis=1)  # (P, len(rows))
        sig[rows] = (mins >> np.uint64(32)).astype(np.uint32).T  # shift is monotone: same min


def lsh_candidates(sig: np.ndarray, num_bands: int, rows: int) -> np.ndarray:
    """Candidate pairs: documents whose signatures agree on all rows of some band.

    Each document in a bucket is paired with the bucket's first document (linear in N, and
    enough for connected components). Returns (E, 2) int64 pairs (later, earlier).
    """
    valid = sig[:, 0] != np.iinfo(np.uint32).max  # documents without shingles match nothing
    pairs = []
    for band in range(num_bands):
        block = sig[:, band * rows : (band + 1) * rows].astype(np.uint64)  # (N, r)
        h = np.full(len(sig), np.uint64(band))
        for j in range(rows):
            h = mix64(h * np.uint64(0x100000001B3) + block[:, j])
        idx = np.flatnonzero(valid)
        order = idx[np.argsort(h[idx], kind="stable")]
        hs = h[order]
        new = np.ones(len(order), dtype=bool)  # first of its bucket
        new[1:] = hs[1:] != hs[:-1]
        first = order[np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))]
        pairs.append(np.stack([order[~new], first[~new]], axis=1))
    return np.unique(np.concatenate(pairs), axis=0) if pairs else np.empty((0, 2), np.int64)


def near_duplicate_clusters(sig: np.ndarray, cfg: MinHashConfig) -> np.ndarray:
    """Cluster label per document (N,), from verified LSH candidate pairs."""
    if len(sig) == 0:
        return np.empty(0, dtype=np.int64)
    pairs = lsh_candidates(sig, cfg.num_bands, cfg.rows_per_band)
    if len(pairs) and cfg.verify_threshold > 0:
        est = (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1)  # (E,) estimated Jaccard
        pairs = pairs[est >= cfg.verify_threshold]
    n = len(sig)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def cluster_texts(texts: list[str], cfg: MinHashConfig | None = None) -> np.ndarray:
    """Near-duplicate cluster label of each text (N,); equal labels = same cluster."""
    cfg = cfg or MinHashConfig()
    hasher = MinHasher(cfg.num_perm, cfg.ngram, cfg.seed)
    return near_duplicate_clusters(hasher.signatures([hasher.shingles(t) for t in texts]), cfg)


class MinHashDedup(PipelineStep):
    """Keep one document per near-duplicate cluster (the first in input order).

    Successive ``run`` calls (the pipeline's input parts) share state: a document close to one
    kept in an earlier call is dropped. Only signatures of kept documents are remembered
    ((num_perm,) uint32 each); ``restore`` re-adds those of a resumed run's finished parts.

    NOTE: clusters need every signature of a call, so ``run`` reads all of its input before it
    yields, holding that part's documents in memory.
    """

    name = "minhash_dedup"

    def __init__(self, cfg: MinHashConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or MinHashConfig()
        self.hasher = MinHasher(self.cfg.num_perm, self.cfg.ngram, self.cfg.seed)
        self._kept = np.empty((0, self.cfg.num_perm), np.uint32)  # (M, P) earlier kept docs
        self._pending: list[np.ndarray] = []  # shingles of restored documents

    def restore(self, doc: Document) -> None:
        """Remember a document kept by an earlier (resumed) run."""
        self._pending.append(self.hasher.shingles(doc.text))

    def _earlier(self) -> np.ndarray:
        if self._pending:
            self._kept = np.concatenate([self._kept, self.hasher.signatures(self._pending)])
            self._pending = []
        return self._kept

    def keep(self, sig: np.ndarray) -> list[int]:
        """The rows of one part's signatures (N, P) to keep; remembers the kept ones.

        The one decision of this step: ``run`` calls it, and so does the sharded pipeline
        (``data/distributed.py``) on signatures its tasks computed, so both keep the same.
        """
        earlier = self._earlier()
        labels = near_duplicate_clusters(np.concatenate([earlier, sig]), self.cfg)
        seen = set(labels[: len(earlier)].tolist())  # clusters that already have their copy
        kept = []
        for i, label in enumerate(labels[len(earlier):].tolist()):
            if label not in seen:
                seen.add(label)
                kept.append(i)
        self._kept = np.concatenate([self._kept, sig[kept]])
        return kept

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        buffered: list[Document] = []
        shingles: list[np.ndarray] = []
        for doc in docs:
            self.stats.add("in", 1, len(doc.text.encode("utf-8")))
            buffered.append(doc)
            shingles.append(self.hasher.shingles(doc.text))
        kept = set(self.keep(self.hasher.signatures(shingles)))  # (N, P) signatures
        for i, doc in enumerate(buffered):
            nbytes = len(doc.text.encode("utf-8"))
            if i not in kept:
                self.stats.add("dropped.near_duplicate", 1, nbytes)
                continue
            self.stats.add("out", 1, nbytes)
            yield doc
