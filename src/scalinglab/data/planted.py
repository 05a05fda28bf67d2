"""A planted near-duplicate benchmark: document pairs with controlled word edits.

Each pair is a random base document and a copy with a chosen share of its words substituted,
inserted or deleted at random positions, so the pairs' word-5-gram Jaccard similarities cover
0..1. The true Jaccard is computed exactly on Python sets (independent of the MinHash hashing),
and the dedup result is scored as: recall on pairs with J >= 0.8 and the flagged share of
pairs with J <= 0.5. Used by the tests and ``benchmarks/dedup_scurve.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scalinglab.data.text_hash import normalize_words


@dataclasses.dataclass
class PlantedPairs:
    """texts[2k] and texts[2k+1] form pair k; ``jaccard[k]`` is their word-n-gram Jaccard."""

    texts: list[str]
    jaccard: np.ndarray  # (K,) float


def _edit(words: list[str], rate: float, vocab: list[str], rng: np.random.Generator) -> list[str]:
    out = list(words)
    for _ in range(int(round(rate * len(words)))):
        pos = int(rng.integers(len(out)))
        kind = rng.integers(3)
        if kind == 0:
            out[pos] = vocab[rng.integers(len(vocab))]
        elif kind == 1:
            out.insert(pos, vocab[rng.integers(len(vocab))])
        elif len(out) > 1:
            del out[pos]
    return out


def jaccard(a: str, b: str, n: int = 5) -> float:
    """Exact Jaccard similarity of the word-n-gram sets of two texts."""
    wa, wb = normalize_words(a), normalize_words(b)
    sa = {tuple(wa[i : i + n]) for i in range(len(wa) - n + 1)}
    sb = {tuple(wb[i : i + n]) for i in range(len(wb) - n + 1)}
    return len(sa & sb) / max(len(sa | sb), 1)


def make_planted_pairs(
    num_pairs: int = 1000, doc_words: int = 200, max_edit_rate: float = 0.15, seed: int = 0
) -> PlantedPairs:
    """Build ``num_pairs`` base/edited pairs; edit rates are uniform in [0, max_edit_rate]."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(20_000)]
    # Zipf-like word frequencies, as in natural text (frequent words repeat within a document).
    probs = 1.0 / np.arange(1, len(vocab) + 1)
    probs /= probs.sum()
    texts, jac = [], []
    for _ in range(num_pairs):
        base = [vocab[i] for i in rng.choice(len(vocab), size=doc_words, p=probs)]
        edited = _edit(base, float(rng.uniform(0, max_edit_rate)), vocab, rng)
        texts += [" ".join(base), " ".join(edited)]
        jac.append(jaccard(texts[-2], texts[-1]))
    return PlantedPairs(texts, np.array(jac))


def score_clusters(planted: PlantedPairs, labels: np.ndarray) -> dict[str, float]:
    """Recall at J >= 0.8, flagged share at J <= 0.5, and merges across unrelated pairs."""
    same = labels[0::2] == labels[1::2]  # (K,) pair k flagged as duplicates
    hi, lo = planted.jaccard >= 0.8, planted.jaccard <= 0.5
    cluster_pairs = np.bincount(labels)[labels[0::2]]  # members in the base doc's cluster
    return {
        "pairs": len(same),
        "pairs_j_ge_0.8": int(hi.sum()),
        "recall_j_ge_0.8": float(same[hi].mean()) if hi.any() else float("nan"),
        "pairs_j_le_0.5": int(lo.sum()),
        "flagged_j_le_0.5": float(same[lo].mean()) if lo.any() else float("nan"),
        "unrelated_merges": int((cluster_pairs > 2).sum()),
    }
