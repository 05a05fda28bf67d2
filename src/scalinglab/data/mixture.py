"""Source mixture (MassiveText-style): sample each source's clean documents by weight.

Given each source's clean size and a weight, the mixture of ``total_bytes`` takes
``weight * total_bytes`` bytes from each source. That is ``epochs = weight * total_bytes /
clean_bytes`` passes over the source: a source with epochs 2.5 appears twice in full plus a
seeded random half of its documents; one with epochs 0.3 contributes a random 30% of its
documents. Sampling is by document, so the realised bytes are close to, not exactly, the plan.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping

from scalinglab.config import Config
from scalinglab.errors import ScalinglabError


class MixtureError(ScalinglabError, ValueError):
    """Weights that cannot be mixed (negative, all zero, or given for only some sources)."""


@dataclasses.dataclass
class MixtureConfig(Config):
    """How the clean sources are mixed into the prepared corpus."""

    total_bytes: int | None = None
    """Size of the mixture (None: the total clean size, so natural weights give 1 epoch each)."""
    seed: int = 0
    """Seed of the document sampling and of the final shuffle."""
    shuffle: bool = True
    """Shuffle the mixed documents (else they stay grouped by source, in input order)."""


def plan_mixture(clean: Mapping[str, Mapping[str, int]], weights: Mapping[str, float | None],
                 total_bytes: int | None = None) -> dict[str, dict[str, float]]:
    """Per source: weight (normalised), clean bytes and docs, target bytes, epochs.

    Args:
        clean: ``{source: {"docs": n, "bytes": b}}`` after filtering.
        weights: ``{source: weight or None}``; all None means each source's natural share.
        total_bytes: size of the mixture (default: sum of clean bytes).
    """
    given = {s: w for s, w in weights.items() if w is not None}
    if given and len(given) != len(weights):
        missing = sorted(set(weights) - set(given))
        raise MixtureError(f"mixture: weights given for some sources but not for {missing}")
    if any(w < 0 for w in given.values()):
        raise MixtureError(f"mixture: negative weight in {given}")
    total_clean = sum(c["bytes"] for c in clean.values())
    total = total_clean if total_bytes is None else total_bytes
    raw = given or {s: clean[s]["bytes"] for s in weights}
    norm = sum(raw.values())
    if norm <= 0 and not given:  # every document was filtered out: an empty mixture
        return {s: {"weight": 0.0, "clean_docs": clean[s]["docs"], "clean_bytes": 0,
                    "target_bytes": 0.0, "epochs": 0.0} for s in weights}
    if norm <= 0:
        raise MixtureError("mixture: weights sum to zero (or every source is empty after cleaning)")
    plan = {}
    for source in weights:
        w = raw[source] / norm
        nbytes = clean[source]["bytes"]
        if w > 0 and nbytes == 0:
            raise MixtureError(f"mixture: source {source!r} has weight {w:.3g} but no clean text")
        plan[source] = {"weight": w, "clean_docs": clean[source]["docs"], "clean_bytes": nbytes,
                        "target_bytes": w * total, "epochs": w * total / nbytes if nbytes else 0.0}
    return plan


def sample_counts(n_docs: int, epochs: float, rng: random.Random) -> list[int]:
    """How many copies of each of ``n_docs`` documents a source contributes for ``epochs``."""
    whole = math.floor(epochs)
    counts = [whole] * n_docs
    extra = round((epochs - whole) * n_docs)
    for i in rng.sample(range(n_docs), extra):
        counts[i] += 1
    return counts


def sample_mixture(docs_per_source: Mapping[str, int], plan: Mapping[str, Mapping[str, float]],
                   seed: int = 0, shuffle: bool = True) -> list[tuple[str, int, int]]:
    """The mixture as ``(source, doc_index, copy)`` triples, shuffled with ``seed``."""
    rng = random.Random(seed)
    out: list[tuple[str, int, int]] = []
    for source in sorted(docs_per_source):
        counts = sample_counts(docs_per_source[source], plan[source]["epochs"], rng)
        out.extend((source, i, c) for i, n in enumerate(counts) for c in range(n))
    if shuffle:
        rng.shuffle(out)
    return out
