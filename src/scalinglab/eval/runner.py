"""Evaluate one model on tasks at several shot counts -> the results dictionary.

``results.json`` schema (read by the study report)::

    {"model": "runs/x", "tokenizer": "bytes" | "path/tokenizer.json", "seed": 0,
     "tasks": {TASK: {"type": "multiple_choice" | "cloze" | "rolling" | "generate",
                      "shots": {"0": {"acc": .., "acc_norm": .., "acc_bytes": .., "n": ..,
                                      "clean": {...same keys...}, "dirty": {...}}}}},
     "bits_per_byte": float | null}

Multiple choice has ``acc``, ``acc_norm``, ``acc_bytes``; cloze has ``acc`` (greedy exact
match) and ``perplexity``; generate has ``exact_match``; rolling tasks have
``bits_per_byte``, ``byte_perplexity``, ``word_perplexity`` and ``by_source`` (the same per
document source), under shots ``"0"`` only (no prompt). ``clean``/``dirty`` appear when a
contamination index was given. The top-level ``bits_per_byte`` is that of ``heldout_bpb``
when it was run.
"""

from __future__ import annotations

from typing import Any

from scalinglab.eval import metrics
from scalinglab.eval.contamination import DirtyCheck, dirty_flags
from scalinglab.eval.fewshot import render_requests, sample_shots
from scalinglab.eval.scoring import Scorer
from scalinglab.eval.tasks import Task, TaskType


def score_task(scorer: Scorer, task: Task, shots: int, seed: int = 0) -> list[dict[str, Any]]:
    """Per-example metric records of ``task`` at ``shots`` shots."""
    spec = task.spec
    if spec.type == TaskType.rolling:
        texts = [ex.text for ex in task.examples]
        lls = scorer.rolling_loglikelihood(texts, spec.context_len)
        return [metrics.rolling(ll, t) for ll, t in zip(lls, texts, strict=True)]
    pool = task.fewshot_pool or task.examples
    requests = [
        render_requests(spec, ex, sample_shots(pool, shots, seed, i, exclude=ex))
        for i, ex in enumerate(task.examples)
    ]
    if spec.type == TaskType.generate:
        texts = [scorer.generate(r[0][0], spec.until, spec.max_new_tokens, spec.temperature,
                                 seed=seed * 1_000_003 + i) for i, r in enumerate(requests)]
        return [metrics.generated(t, ex.choices[0])
                for t, ex in zip(texts, task.examples, strict=True)]
    if spec.type == TaskType.cloze:
        results = scorer.loglikelihood([r[0] for r in requests])
        return [metrics.cloze(ll, greedy) for ll, greedy in results]
    flat = scorer.loglikelihood([pair for r in requests for pair in r])
    records, k = [], 0
    for ex in task.examples:
        lls = [ll for ll, _ in flat[k:k + len(ex.choices)]]
        k += len(ex.choices)
        records.append(metrics.multiple_choice(lls, ex.choices, ex.gold))
    return records


def summarize(task: Task, records: list[dict[str, Any]],
              flags: list[bool] | None) -> dict[str, Any]:
    """Aggregate records overall, per source (rolling), and on clean/dirty subsets."""
    kind = task.spec.type.value
    out: dict[str, Any] = metrics.aggregate(kind, records)
    if task.spec.type == TaskType.rolling:
        sources = sorted({ex.source for ex in task.examples})
        out["by_source"] = {
            s: metrics.aggregate(kind, [r for r, ex in zip(records, task.examples, strict=True)
                                        if ex.source == s]) for s in sources
        }
    if flags is not None:
        out["clean"] = metrics.aggregate(kind, [r for r, d in zip(records, flags, strict=True)
                                                if not d])
        out["dirty"] = metrics.aggregate(kind, [r for r, d in zip(records, flags, strict=True)
                                                if d])
    return out


def evaluate(scorer: Scorer, tasks: list[Task], shots: list[int], seed: int = 0,
             index: DirtyCheck | None = None, model: str = "", tokenizer: str = "",
             ) -> dict[str, Any]:
    """Score every task at every shot count; see the module docstring for the schema."""
    results: dict[str, Any] = {"model": model, "tokenizer": tokenizer, "seed": seed,
                               "tasks": {}, "bits_per_byte": None}
    for task in tasks:
        flags = dirty_flags(index, [ex.text for ex in task.examples])
        counts = [0] if task.spec.type == TaskType.rolling else shots
        per_shot = {str(k): summarize(task, score_task(scorer, task, k, seed), flags)
                    for k in counts}
        results["tasks"][task.spec.name] = {"type": task.spec.type.value, "shots": per_shot}
        if task.spec.name == "heldout_bpb":
            results["bits_per_byte"] = per_shot["0"]["bits_per_byte"]
    return results
