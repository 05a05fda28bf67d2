"""Deduplication steps: exact (normalised-text hash) and near-duplicate (MinHash LSH).

Near-duplicates follow Broder's MinHash over word 5-gram shingles with LSH banding, plus one
check per candidate pair: its estimated Jaccard (share of equal signature values) must reach
``verify_threshold``. Banding alone cannot separate Jaccard 0.8 from 0.5 with a modest number
of permutations (b=20 x r=6 flags 27% of pairs at J=0.5); the check makes the curve steep
(see ``benchmarks/dedup_scurve.py``). Documents linked by verified pairs form clusters
(connected components over the whole corpus); the first document of each cluster, in input
order, is kept.

The signatures are computed with vectorised numpy (multiply-shift hashing per permutation over all
shingles of a batch at once); see the README for why this and not datasketch / datatrove.
"""

from __future__ import annotations

import dataclasses
import hashlib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from scalinglab.config import Config, ConfigError
from scalinglab.data.document import Document
from scalinglab.data.steps.base import PipelineStep
from scalinglab.data.text_hash import hash_words, mix64, ngram_hashes, normalize_words
from scalinglab.errors import ScalinglabError

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


def band_pairs(block: np.ndarray, band: int, valid: np.ndarray) -> np.ndarray:
    """Candidate pairs of one LSH band: (E, 2) int64 (later, earlier) row indices.

    ``block`` is that band's (N, r) slice of the signatures, rows in input order. Each row in
    a bucket is paired with the bucket's first row (linear in N, and enough for connected
    components); rows with ``valid`` False (no shingles) match nothing. The sharded pipeline
    runs this per band in separate tasks; the union over bands is :func:`lsh_candidates`.
    """
    block = block.astype(np.uint64)
    h = np.full(len(block), np.uint64(band))
    for j in range(block.shape[1]):
        h = mix64(h * np.uint64(0x100000001B3) + block[:, j])
    idx = np.flatnonzero(valid)
    order = idx[np.argsort(h[idx], kind="stable")]
    hs = h[order]
    new = np.ones(len(order), dtype=bool)  # first of its bucket
    new[1:] = hs[1:] != hs[:-1]
    first = order[np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))]
    return np.stack([order[~new], first[~new]], axis=1).astype(np.int64)


def has_shingles(sig: np.ndarray) -> np.ndarray:
    """(N,) bool: rows that are a real signature (documents without shingles are all max)."""
    return sig[:, 0] != np.iinfo(np.uint32).max


def lsh_candidates(sig: np.ndarray, num_bands: int, rows: int) -> np.ndarray:
    """Candidate pairs: documents whose signatures agree on all rows of some band.

    Returns (E, 2) int64 pairs (later, earlier), the union of :func:`band_pairs` over bands.
    """
    valid = has_shingles(sig)
    pairs = [band_pairs(sig[:, b * rows : (b + 1) * rows], b, valid) for b in range(num_bands)]
    return np.unique(np.concatenate(pairs), axis=0) if pairs else np.empty((0, 2), np.int64)


def verified(pairs: np.ndarray, sig_a: np.ndarray, sig_b: np.ndarray,
             threshold: float) -> np.ndarray:
    """The pairs whose estimated Jaccard (share of equal values of ``sig_a[i]``, ``sig_b[i]``,
    the two rows' signatures) reaches ``threshold``; 0 keeps every pair."""
    if not len(pairs) or threshold <= 0:
        return pairs
    return pairs[(sig_a == sig_b).mean(axis=1) >= threshold]


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label per row (N,) of the graph with edges ``pairs``."""
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def not_first_of_cluster(labels: np.ndarray) -> np.ndarray:
    """(N,) bool: rows that are not the first row (in input order) of their cluster."""
    first = np.full(labels.max() + 1 if len(labels) else 0, len(labels), np.int64)
    np.minimum.at(first, labels, np.arange(len(labels)))
    return first[labels] != np.arange(len(labels))


def near_duplicate_clusters(sig: np.ndarray, cfg: MinHashConfig) -> np.ndarray:
    """Cluster label per document (N,), from verified LSH candidate pairs."""
    if len(sig) == 0:
        return np.empty(0, dtype=np.int64)
    pairs = lsh_candidates(sig, cfg.num_bands, cfg.rows_per_band)
    pairs = verified(pairs, sig[pairs[:, 0]], sig[pairs[:, 1]], cfg.verify_threshold)
    return components(len(sig), pairs)


def cluster_texts(texts: list[str], cfg: MinHashConfig | None = None) -> np.ndarray:
    """Near-duplicate cluster label of each text (N,); equal labels = same cluster."""
    cfg = cfg or MinHashConfig()
    hasher = MinHasher(cfg.num_perm, cfg.ngram, cfg.seed)
    return near_duplicate_clusters(hasher.signatures([hasher.shingles(t) for t in texts]), cfg)


class MinHashDedup(PipelineStep):
    """Keep one document per near-duplicate cluster (the first in input order).

    The prepare pipeline calls ``scan`` first with every document that passed the filters
    before this step: the clusters are then the corpus-wide ones, the very ones the sharded
    pipeline (``data/distributed.py``) computes band by band in its tasks, and ``run`` only
    drops the documents that are not the first of their cluster. Exact duplicates may be in
    the scan: a copy has its original's signature and comes after it, so it joins the
    original's cluster and changes no other (and ``ExactDedup`` drops it before ``run``).

    Without a scan, successive ``run`` calls share state instead: each call clusters its input
    with the documents kept by earlier calls ((num_perm,) uint32 each; ``restore`` re-adds
    those of a resumed run), so a chain across calls is cut where a link was dropped.

    NOTE: without a scan, clusters need every signature of a call, so ``run`` reads all of its
    input before it yields, holding that part's documents in memory.
    """

    name = "minhash_dedup"
    scan_after_filters = True  # scan_steps feeds ``scan`` the documents the filters keep

    def __init__(self, cfg: MinHashConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or MinHashConfig()
        self.hasher = MinHasher(self.cfg.num_perm, self.cfg.ngram, self.cfg.seed)
        self._kept = np.empty((0, self.cfg.num_perm), np.uint32)  # (M, P) earlier kept docs
        self._pending: list[np.ndarray] = []  # shingles of restored documents
        self._drop: set[str] | None = None  # ids to drop, once scanned

    def scan(self, docs: Iterable[Document]) -> None:
        """Cluster all of ``docs`` (in input order) and remember the ids that are not the first
        of their cluster. Signatures are computed in batches: (N, P) uint32 stay in memory."""
        ids: list[str] = []
        sigs, batch = [], []
        for doc in docs:
            ids.append(doc.id)
            batch.append(self.hasher.shingles(doc.text))
            if len(batch) == 4096:
                sigs.append(self.hasher.signatures(batch))
                batch = []
        sigs.append(self.hasher.signatures(batch))
        if len(set(ids)) != len(ids):
            dup = next(i for i, c in Counter(ids).items() if c > 1)
            raise ScalinglabError(f"minhash_dedup: document id {dup!r} occurs twice; ids must "
                                  "be unique within the corpus (give each source a name)")
        labels = near_duplicate_clusters(np.concatenate(sigs), self.cfg)
        self._drop = {i for i, d in zip(ids, not_first_of_cluster(labels).tolist(),
                                        strict=True) if d}

    def restore(self, doc: Document) -> None:
        """Remember a document kept by an earlier (resumed) run (not needed once scanned)."""
        if self._drop is None:
            self._pending.append(self.hasher.shingles(doc.text))

    def _earlier(self) -> np.ndarray:
        if self._pending:
            self._kept = np.concatenate([self._kept, self.hasher.signatures(self._pending)])
            self._pending = []
        return self._kept

    def keep(self, sig: np.ndarray) -> list[int]:
        """The rows of one call's signatures (N, P) to keep (no scan); remembers the kept ones."""
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
        if self._drop is not None:
            yield from self._run_scanned(docs)
            return
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

    def _run_scanned(self, docs: Iterable[Document]) -> Iterator[Document]:
        assert self._drop is not None
        for doc in docs:
            nbytes = len(doc.text.encode("utf-8"))
            self.stats.add("in", 1, nbytes)
            if doc.id in self._drop:
                self.stats.add("dropped.near_duplicate", 1, nbytes)
                continue
            self.stats.add("out", 1, nbytes)
            yield doc
