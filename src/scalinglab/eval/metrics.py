"""Metrics as pure functions: per-example scores, then aggregates over any subset.

Definitions follow lm-evaluation-harness so that numbers agree with it:

- multiple choice: ``acc`` = argmax of log-likelihoods is the gold choice; ``acc_norm`` = the
  same after dividing each log-likelihood by the choice's length in characters; ``acc_bytes``
  divides by its length in UTF-8 bytes (ties go to the first choice, as ``numpy.argmax``);
- cloze: ``acc`` = the target is the greedy continuation; ``perplexity`` = exp(-mean ll);
- generate: ``exact_match`` of the generated text and the target, both stripped;
- rolling: ``bits_per_byte`` = -sum(ll) / sum(bytes) / ln 2, ``byte_perplexity`` =
  exp(-sum(ll) / sum(bytes)), ``word_perplexity`` = exp(-sum(ll) / sum(words)), where words are
  the pieces of ``re.split(r"\\s+", text)``.
"""

from __future__ import annotations

import math
import re
from typing import Any


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def multiple_choice(lls: list[float], choices: list[str], gold: int) -> dict[str, float]:
    """Per-question scores from the choices' log-likelihoods."""
    chars = [ll / max(len(c), 1) for ll, c in zip(lls, choices, strict=True)]
    nbytes = [ll / max(len(c.encode("utf-8")), 1) for ll, c in zip(lls, choices, strict=True)]
    return {
        "acc": float(_argmax(lls) == gold),
        "acc_norm": float(_argmax(chars) == gold),
        "acc_bytes": float(_argmax(nbytes) == gold),
    }


def cloze(ll: float, greedy: bool) -> dict[str, float]:
    return {"acc": float(greedy), "loglikelihood": ll}


def generated(text: str, target: str) -> dict[str, float]:
    return {"exact_match": float(text.strip() == target.strip())}


def rolling(ll: float, text: str) -> dict[str, float]:
    return {"loglikelihood": ll, "bytes": len(text.encode("utf-8")),
            "words": len(re.split(r"\s+", text))}


def aggregate(kind: str, records: list[dict[str, Any]]) -> dict[str, float]:
    """Aggregate per-example records of one task type (``n`` is always included)."""
    n = len(records)
    if n == 0:
        return {"n": 0}
    if kind == "rolling":
        total = sum(r["loglikelihood"] for r in records)
        nbytes = sum(r["bytes"] for r in records)
        words = sum(r["words"] for r in records)
        return {"bits_per_byte": -total / nbytes / math.log(2),
                "byte_perplexity": math.exp(-total / nbytes),
                "word_perplexity": math.exp(-total / words), "n": n}
    if kind == "generate":
        return {"exact_match": sum(r["exact_match"] for r in records) / n, "n": n}
    if kind == "cloze":
        mean_ll = sum(r["loglikelihood"] for r in records) / n
        return {"acc": sum(r["acc"] for r in records) / n, "perplexity": math.exp(-mean_ll),
                "n": n}
    keys = ("acc", "acc_norm", "acc_bytes")
    return {**{k: sum(r[k] for r in records) / n for k in keys}, "n": n}
