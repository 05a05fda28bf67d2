"""Examples per context, counted by hand with the byte tokenizer (1 token per byte)."""

from __future__ import annotations

from scalinglab.eval.context_fit import examples_per_context
from scalinglab.eval.tasks import Example, Task, TaskSpec
from scalinglab.eval.tokenizer import ByteTokenizer


def test_counts_match_a_hand_computation():
    spec = TaskSpec(name="t", template="{query}", target_delimiter=" ", fewshot_delimiter="\n\n")
    pool = [Example({"query": "abcd"}, ["yes", "no"], 0) for _ in range(10)]
    test = [Example({"query": "xy"}, ["no", "yes"], 0)]
    got = examples_per_context(ByteTokenizer().encode, Task(spec, test, pool), [20, 100], 3)
    shot = len("abcd yes\n\n")  # 10 bytes per solved example
    query = len("xy no")  # 5 bytes: the query with its answer
    assert got["shot_tokens"] == shot and got["prompt_tokens"] == 3 * shot + query
    assert got["fit"] == {"20": (20 - query) // shot, "100": min(10, (100 - query) // shot)}
    assert got["truncated"] == {"20": 1.0, "100": 0.0}
