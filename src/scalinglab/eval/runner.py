"""Evaluate one model on tasks at several shot counts -> the results dictionary.

``results.json`` schema (read by the study report)::

    {"model": "runs/x", "model_id": "SIZE-MTIME-INODE of the weights", "seed": 0,
     "context": the model's context in tokens (prompts longer than it are cut),
     "tokenizer": "bytes" | "path/tokenizer.json",
     "tasks": {TASK: {"type": "multiple_choice" | "cloze" | "rolling" | "generate",
                      "key": "digest of the task file, examples, seed and index",
                      "fewshot_pool": number of examples shots are drawn from,
                      "shots": {"0": {"acc": .., "acc_norm": .., "acc_bytes": .., "n": ..,
                                      "clean": {...same keys...}, "dirty": {...}}}}},
     "bits_per_byte": float | null}

Multiple choice has ``acc``, ``acc_norm``, ``acc_bytes``; cloze has ``acc`` (greedy exact
match) and ``perplexity``; generate has ``exact_match``; rolling tasks have
``bits_per_byte``, ``byte_perplexity``, ``word_perplexity`` and ``by_source`` (the same per
document source), under shots ``"0"`` only (no prompt). ``truncated`` (beside ``n``) counts
prompts cut from the left to fit the model's context (when it is ``n``, more shots cannot
change the score).
``clean``/``dirty`` appear when a contamination index was given. The top-level
``bits_per_byte`` is that of ``heldout_bpb`` when it was run. Results of earlier invocations
on the same weights are kept, so one ``results.json`` gathers every task evaluated on a run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

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
        bar = tqdm(requests, desc=scorer.desc, unit="example", disable=not scorer.progress)
        texts = [scorer.generate(r[0][0], spec.until, spec.max_new_tokens, spec.temperature,
                                 seed=seed * 1_000_003 + i) for i, r in enumerate(bar)]
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


def task_key(task: Task, seed: int, index_id: str = "") -> str:
    """A digest of everything a task's numbers depend on besides the model: its task file,
    examples, few-shot pool, seed and contamination index."""
    def digest(examples: list) -> list:
        return [[ex.text, ex.choices, ex.gold, ex.continuation] for ex in examples]

    payload = json.dumps([task.spec.as_dict(), seed, index_id, digest(task.examples),
                          digest(task.fewshot_pool)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def evaluate(scorer: Scorer, tasks: list[Task], shots: list[int], seed: int = 0,
             index: DirtyCheck | None = None, model: str = "", tokenizer: str = "",
             model_id: str = "", index_id: str = "", previous: dict[str, Any] | None = None,
             on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Score every task at every shot count; see the module docstring for the schema.

    Resuming: when ``previous`` results have the same ``model_id``, their other tasks are kept
    and a (task, shots) entry whose task key is unchanged is reused rather than rescored.
    ``on_update`` gets the results after every scored entry (to save progress).
    """
    results: dict[str, Any] = {"model": model, "model_id": model_id, "tokenizer": tokenizer,
                               "seed": seed, "context": scorer.max_len, "tasks": {},
                               "bits_per_byte": None}
    if previous and model_id and previous.get("model_id") == model_id:
        results["tasks"] = dict(previous.get("tasks", {}))
        results["bits_per_byte"] = previous.get("bits_per_byte")
    for task in tasks:
        name, key = task.spec.name, task_key(task, seed, index_id)
        entry = results["tasks"].get(name)
        if not entry or entry.get("key") != key:
            # k-shot uses min(k, fewshot_pool) shots; the pool excludes the example itself.
            pool = len(task.fewshot_pool) or max(0, len(task.examples) - 1)
            entry = results["tasks"][name] = {"type": task.spec.type.value, "key": key,
                                              "fewshot_pool": pool, "shots": {}}
        flags = dirty_flags(index, [ex.text for ex in task.examples])
        for k in [0] if task.spec.type == TaskType.rolling else shots:
            if str(k) not in entry["shots"]:
                before = scorer.truncated
                scorer.desc = f"{name} {k}-shot"
                summary = summarize(task, score_task(scorer, task, k, seed), flags)
                # Prompts cut to fit the model's context: shots may have been cut away.
                summary["truncated"] = scorer.truncated - before
                entry["shots"][str(k)] = summary
                if on_update:
                    on_update(results)
        if name == "heldout_bpb":
            results["bits_per_byte"] = entry["shots"]["0"]["bits_per_byte"]
    return results


def truncation_warning(results: dict[str, Any]) -> str | None:
    """One line naming every (task, shots) whose prompts were cut to fit the context, or
    None when none were."""
    cut = [f"{name} {k}-shot {m['truncated']} of {m['n']}"
           for name, task in results["tasks"].items() for k, m in task["shots"].items()
           if m.get("truncated")]
    if not cut:
        return None
    return (f"prompts cut from the left to fit the model's context of "
            f"{results.get('context', '?')} tokens (each loses its start, first shots first): "
            f"{', '.join(cut)}; use fewer shots or a model with a longer context")
