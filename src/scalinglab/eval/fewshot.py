"""k-shot prompt rendering as pure functions (no model, no I/O), and shot sampling.

A prompt is ``description + shot_1 + sep + ... + shot_k + sep + query``; a shot is an example's
query, the target delimiter and its gold answer. Multiple-choice continuations are the target
delimiter plus each choice; for "partial" tasks (WinoGrande) the choices complete the *context*
and the shared continuation is scored after each.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from scalinglab.eval.tasks.base import Example, TaskError, TaskSpec

T = TypeVar("T")


def sample_shots(pool: Sequence[T], k: int, seed: int, index: int, exclude: T | None = None,
                 ) -> list[T]:
    """``k`` examples from ``pool`` for test example ``index``: the same for the same seed
    and index, different across examples; ``exclude`` (the test example itself, when shots
    come from the same split) is never drawn."""
    if k <= 0:
        return []
    rng = random.Random(f"{seed}:{index}")
    picked = rng.sample(range(len(pool)), min(k + 1, len(pool)))
    return [pool[i] for i in picked if pool[i] is not exclude][:k]


def render_query(spec: TaskSpec, ex: Example) -> str:
    try:
        return spec.template.format(**ex.fields)
    except (KeyError, IndexError, ValueError) as e:
        raise TaskError(f"task {spec.name}: template {spec.template!r} cannot be filled: "
                        f"{e!r} (fields: {sorted(ex.fields)})") from None


def render_shot(spec: TaskSpec, ex: Example) -> str:
    """A solved example: for partial tasks the gold completion then the continuation."""
    if ex.continuation is not None:
        return render_query(spec, ex) + ex.choices[ex.gold] + spec.target_delimiter + \
            ex.continuation
    return render_query(spec, ex) + spec.target_delimiter + ex.choices[ex.gold]


def render_prefix(spec: TaskSpec, shots: Sequence[Example]) -> str:
    """Description and solved shots, ending with the separator before the query."""
    text = spec.description
    if shots:
        text += spec.fewshot_delimiter.join(render_shot(spec, s) for s in shots)
        text += spec.fewshot_delimiter
    return text


def render_requests(spec: TaskSpec, ex: Example, shots: Sequence[Example],
                    ) -> list[tuple[str, str]]:
    """The (context, continuation) pairs to score for one example, one per choice."""
    prefix = render_prefix(spec, shots) + render_query(spec, ex)
    if ex.continuation is not None:  # partial scoring: the choice ends the context
        return [(prefix + c, spec.target_delimiter + ex.continuation) for c in ex.choices]
    return [(prefix, spec.target_delimiter + c) for c in ex.choices]
