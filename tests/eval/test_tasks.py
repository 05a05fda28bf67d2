"""Loaders, task files, few-shot rendering, held-out tasks and metrics (no model needed)."""

from __future__ import annotations

import math

import pytest

from scalinglab.eval import metrics
from scalinglab.eval.fewshot import render_requests, sample_shots
from scalinglab.eval.tasks import TaskError, resolve_task
from tests.eval import data


@pytest.fixture
def files(tmp_path):
    return {name: data.write_jsonl(tmp_path / f"{name}.jsonl", recs) for name, recs in [
        ("piqa", data.PIQA), ("hellaswag", data.HELLASWAG), ("winogrande", data.WINOGRANDE),
        ("arc", data.ARC), ("boolq", data.BOOLQ), ("lambada", data.LAMBADA)]}


def test_loaders_render_the_standard_prompts(files):
    def first(name):
        task = resolve_task(f"{name}={files[name]}")
        return task, render_requests(task.spec, task.examples[0], [])

    task, reqs = first("piqa")
    assert reqs == [("Question: Open a jar\nAnswer:", " Twist the lid."),
                    ("Question: Open a jar\nAnswer:", " Push the lid.")]
    task, reqs = first("hellaswag")
    assert reqs[0] == ("Baking: A man mixes flour. He", " bakes. bread.")
    assert task.examples[0].gold == 0 and len(reqs) == 4
    task, reqs = first("winogrande")
    assert reqs == [("The cup fell off the table because the cup", " was tilted."),
                    ("The cup fell off the table because the table", " was tilted.")]
    assert task.examples[0].gold == 1
    task, reqs = first("arc")
    assert reqs[1] == ("Question: Which is a mammal?\nAnswer:", " Whale")
    assert task.examples[0].gold == 1 and resolve_task(f"arc={files['arc']}").examples[1].gold == 0
    task, reqs = first("boolq")
    assert reqs[1] == ("Cats are mammals.\nQuestion: are cats mammals?\nAnswer:", " yes")
    assert [e.gold for e in task.examples] == [1, 0]
    task, reqs = first("lambada")
    assert reqs == [("She opened the door and saw her old", " friend")]


def test_fewshot_prompts_use_solved_examples_from_the_pool(files):
    task = resolve_task(f"piqa={files['piqa']}")
    ex = task.examples[0]
    shots = sample_shots(task.examples, 2, seed=0, index=0, exclude=ex)
    assert len(shots) == 2 and ex not in shots
    assert shots == sample_shots(task.examples, 2, seed=0, index=0, exclude=ex)
    (ctx, cont), _ = render_requests(task.spec, ex, shots)
    solved = [f"Question: {s.fields['goal']}\nAnswer: {s.choices[s.gold]}" for s in shots]
    assert ctx == "\n\n".join(solved) + "\n\nQuestion: Open a jar\nAnswer:"
    wino = resolve_task(f"winogrande={files['winogrande']}")
    (ctx, _), _ = render_requests(wino.spec, wino.examples[0], [wino.examples[1]])
    assert ctx.startswith("Anna gave Maria a gift because Anna was kind.\n\n")


def test_bad_records_name_file_and_line(tmp_path):
    bad = data.write_jsonl(tmp_path / "p.jsonl", [data.PIQA[0], {"goal": "x", "sol1": "a"}])
    with pytest.raises(TaskError, match=r"p.jsonl:2: .*sol2"):
        resolve_task(f"piqa={bad}")
    (tmp_path / "q.jsonl").write_text('{"goal": 1}\nnot json\n')
    with pytest.raises(TaskError, match=r"q.jsonl:1: field 'goal' must be a string"):
        resolve_task(f"piqa={tmp_path / 'q.jsonl'}")
    with pytest.raises(TaskError, match="unknown task 'nope'"):
        resolve_task("nope")
    with pytest.raises(TaskError, match="no data file"):
        resolve_task("piqa")


def test_task_yaml_file_with_separate_fewshot_split(tmp_path):
    data.write_jsonl(tmp_path / "test.jsonl", [{"query": "2+2=", "choices": ["4", "5"],
                                                "gold": 0}])
    data.write_jsonl(tmp_path / "train.jsonl", [{"query": "1+1=", "choices": ["2", "3"],
                                                 "gold": 0}])
    (tmp_path / "sums.yaml").write_text(
        "name: sums\ntype: multiple_choice\nformat: mc\ntemplate: 'Sum: {query}'\n"
        "data: test.jsonl\nfewshot_data: train.jsonl\nfewshot_delimiter: ' | '\n")
    task = resolve_task(str(tmp_path / "sums.yaml"))
    shots = sample_shots(task.fewshot_pool, 1, 0, 0)
    assert render_requests(task.spec, task.examples[0], shots)[0] == \
        ("Sum: 1+1= 2 | Sum: 2+2=", " 4")


def test_heldout_tasks_are_deterministic_and_disjoint(tmp_path):
    path = data.write_jsonl(tmp_path / "val_docs.jsonl", data.val_docs())
    a = resolve_task("heldout_continuation", heldout=path, seed=1)
    b = resolve_task("heldout_continuation", heldout=path, seed=1)
    c = resolve_task("heldout_continuation", heldout=path, seed=2)
    assert [e.choices for e in a.examples] == [e.choices for e in b.examples]
    assert [e.choices for e in a.examples] != [e.choices for e in c.examples]
    assert a.examples and a.fewshot_pool
    assert not {e.fields["query"] for e in a.examples} & {e.fields["query"] for e in a.fewshot_pool}
    for e in a.examples:
        assert len(e.choices) == 4 and len(set(e.choices)) == 4
        assert e.text == e.fields["query"] + " " + e.choices[e.gold]
    cloze = resolve_task("heldout_cloze", heldout=path, seed=1)
    for e in cloze.examples:
        assert e.choices[0].startswith(" ") and e.choices[0][1:].isalpha()
        assert e.text == e.fields["context"] + e.choices[0]
    bpb = resolve_task("heldout_bpb", heldout=path)
    assert len(bpb.examples) == 12 and {e.source for e in bpb.examples} == {"web", "books"}
    with pytest.raises(TaskError, match="held-out documents"):
        resolve_task("heldout_bpb")


def test_multiple_choice_metrics_follow_lm_eval_definitions():
    # The short choice wins on the raw sum (-6 > -8), the long one per character (-1 > -2).
    m = metrics.multiple_choice([-6.0, -8.0], ["abc", "abcdefgh"], gold=1)
    assert m == {"acc": 0.0, "acc_norm": 1.0, "acc_bytes": 1.0}
    # Bytes differ from characters for non-ASCII text.
    # 3 characters but 6 bytes: -4/3 < -5/4 per character, -4/6 > -5/4 per byte.
    m = metrics.multiple_choice([-4.0, -5.0], ["ééé", "abcd"], gold=0)
    assert m["acc_norm"] == 0.0 and m["acc_bytes"] == 1.0
    assert metrics.multiple_choice([-1.0, -1.0], ["a", "b"], gold=0)["acc"] == 1.0  # ties: first


def test_rolling_and_cloze_aggregates():
    recs = [metrics.rolling(-10.0, "ab cd"), metrics.rolling(-4.0, "é")]
    agg = metrics.aggregate("rolling", recs)
    assert agg["bits_per_byte"] == pytest.approx(14 / 7 / math.log(2))
    assert agg["byte_perplexity"] == pytest.approx(math.exp(2.0))
    assert agg["word_perplexity"] == pytest.approx(math.exp(14 / 3))
    c = metrics.aggregate("cloze", [metrics.cloze(-1.0, True), metrics.cloze(-3.0, False)])
    assert c == {"acc": 0.5, "perplexity": pytest.approx(math.exp(2.0)), "n": 2}
    assert metrics.aggregate("multiple_choice", []) == {"n": 0}


def test_heldout_continuation_skips_passages_other_documents_repeat(tmp_path):
    docs = data.val_docs(n=6, words=40)
    for d in docs[1:4]:
        d["text"] = docs[0]["text"]  # four copies of one document (e.g. boilerplate)
    path = data.write_jsonl(tmp_path / "val_docs.jsonl", docs)
    task = resolve_task("heldout_continuation", heldout=path, seed=0)
    assert task.examples
    for e in task.examples + task.fewshot_pool:
        assert len(set(e.choices)) == 4 and e.choices.count(e.choices[e.gold]) == 1


def test_limit_caps_scored_examples_not_the_fewshot_pool(files, tmp_path):
    assert len(resolve_task(f"piqa={files['piqa']}", limit=2).examples) == 2
    path = data.write_jsonl(tmp_path / "val_docs.jsonl", data.val_docs())
    full = resolve_task("heldout_cloze", heldout=path)
    capped = resolve_task("heldout_cloze", heldout=path, limit=3)
    assert len(capped.examples) == 3 and capped.fewshot_pool == full.fewshot_pool
