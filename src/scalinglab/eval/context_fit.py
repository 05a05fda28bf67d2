"""How many solved examples of a task fit in a context of L tokens (Jurassic-1's argument for
a larger, multi-word vocabulary: more in-context examples in the same window).

For each test example (at most ``limit``), its few-shot examples are drawn as ``scalinglab
eval`` draws them (:func:`~scalinglab.eval.fewshot.sample_shots`, same seed), and shots are
added in that order while description + shots + the query with its gold answer stay within L
tokens. A shot's cost is the tokens of ``render_shot + fewshot_delimiter`` on its own, so a
merge across a shot boundary (possible with a multi-word tokenizer) is not counted: the count
is exact for byte-level BPE and within a token per shot otherwise.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from scalinglab.eval.fewshot import render_query, render_shot, sample_shots
from scalinglab.eval.tasks import Task

Encode = Callable[[str], list[int]]


def examples_per_context(encode: Encode, task: Task, contexts: list[int], shots: int,
                         limit: int = 200, seed: int = 0) -> dict:
    """Mean examples that fit per context length, and the share of ``shots``-shot prompts
    longer than each context (those the scorer truncates from the left)."""
    spec = task.spec
    pool = task.fewshot_pool or task.examples
    cost = {id(ex): len(encode(render_shot(spec, ex) + spec.fewshot_delimiter)) for ex in pool}
    desc = len(encode(spec.description)) if spec.description else 0
    examples = task.examples[:limit]
    fits: dict[int, list[int]] = {L: [] for L in contexts}
    over: dict[int, int] = {L: 0 for L in contexts}
    prompt_tokens = []
    for i, ex in enumerate(examples):
        query = len(encode(render_query(spec, ex) + spec.target_delimiter + ex.choices[ex.gold]))
        order = [cost[id(s)] for s in sample_shots(pool, len(pool), seed, i, exclude=ex)]
        k_shot = desc + sum(order[:shots]) + query
        prompt_tokens.append(k_shot)
        for L in contexts:
            used, n = desc + query, 0
            while n < len(order) and used + order[n] <= L:
                used, n = used + order[n], n + 1
            fits[L].append(n)
            over[L] += k_shot > L
    return {"task": spec.name, "examples": len(examples), "shots": shots,
            "shot_tokens": statistics.fmean(cost.values()),
            "prompt_tokens": statistics.fmean(prompt_tokens),
            "fit": {str(L): statistics.fmean(v) for L, v in fits.items()},
            "truncated": {str(L): over[L] / len(examples) for L in contexts}}
