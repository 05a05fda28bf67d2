"""Standard-harness agreement: on the same checkpoint and the same local JSONL tasks,
scalinglab's harness and EleutherAI lm-eval (through the adapter) report the same acc, acc_norm,
perplexity and bits per byte."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from scalinglab.eval.runner import evaluate
from scalinglab.eval.scoring import Scorer
from scalinglab.eval.tasks import resolve_task
from scalinglab.eval.tokenizer import ByteTokenizer
from scalinglab.train.checkpoint import load_model
from tests.eval import data

pytest.importorskip("lm_eval", reason="lm_eval is not installed (pip install '.[eval]')")

MC_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  cache_dir: {cache}
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: "{text}"
doc_to_target: {target}
doc_to_choice: "{choice}"
metric_list:
  - metric: acc
  - metric: acc_norm
"""

ROLLING_YAML = """task: sl_bpb
dataset_path: json
dataset_kwargs:
  cache_dir: {cache}
  data_files:
    test: {path}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""

CLOZE_YAML = """task: sl_lambada
dataset_path: json
dataset_kwargs:
  cache_dir: {cache}
  data_files:
    test: {path}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{text.split(' ')[:-1]|join(' ')}}}}"
doc_to_target: "{{{{' '+text.split(' ')[-1]}}}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
  - metric: acc
"""


WINOGRANDE_YAML = """task: sl_winogrande
dataset_path: json
dataset_kwargs:
  cache_dir: {cache}
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: !function wg_utils.doc_to_text
doc_to_target: !function wg_utils.doc_to_target
doc_to_choice: !function wg_utils.doc_to_choice
metric_list:
  - metric: acc
  - metric: acc_norm
"""

# WinoGrande's partial scoring as lm-eval defines it: the options end the contexts (several
# inputs) and the rest of the sentence is the one target.
WG_UTILS = """
def doc_to_text(doc):
    return {"1": 0, "2": 1}[doc["answer"]]


def doc_to_target(doc):
    return doc["sentence"][doc["sentence"].index("_") + 1:].strip()


def doc_to_choice(doc):
    idx = doc["sentence"].index("_")
    return [doc["sentence"][:idx] + o for o in (doc["option1"], doc["option2"])]
"""


# our task name -> (the lm-eval task written by write_tasks, the metrics both report)
LM_EVAL_TWINS = {
    "mc": ("sl_mc", ["acc", "acc_norm"]), "piqa": ("sl_piqa", ["acc", "acc_norm"]),
    "arc": ("sl_arc", ["acc", "acc_norm"]), "winogrande": ("sl_winogrande", ["acc", "acc_norm"]),
    "heldout_bpb": ("sl_bpb", ["bits_per_byte", "byte_perplexity", "word_perplexity"]),
    "lambada": ("sl_lambada", ["acc", "perplexity"]),
}


def assert_same_results(ours: dict, theirs: dict, names: list[str], rel: float) -> None:
    """Our 0-shot results equal lm-eval's for each task, same example count, every metric."""
    for our_name in names:
        their_name, keys = LM_EVAL_TWINS[our_name]
        mine = ours[our_name]["shots"]["0"]
        assert theirs[their_name]["sample_len"] == mine["n"] > 0
        for key in keys:
            assert mine[key] == pytest.approx(theirs[their_name][f"{key},none"], rel=rel,
                                              abs=1e-6), (our_name, key)


def write_tasks(tmp: Path) -> dict[str, Path]:
    """The same data as scalinglab tasks (paths) and as lm-eval task YAMLs (in tmp/yaml)."""
    heldout = data.write_jsonl(tmp / "val_docs.jsonl", data.val_docs(n=30, words=40))
    # Held-out continuation questions, exported in the generic multiple-choice format.
    cont = resolve_task("heldout_continuation", heldout=heldout, seed=3)
    mc = data.write_jsonl(tmp / "mc.jsonl", [
        {"query": e.fields["query"], "choices": e.choices, "gold": e.gold}
        for e in cont.examples + cont.fewshot_pool])
    piqa = data.write_jsonl(tmp / "piqa.jsonl", data.PIQA * 3)
    lambada = data.write_jsonl(tmp / "lambada.jsonl", data.LAMBADA + [
        {"text": d["text"][:120].rsplit(" ", 1)[0]} for d in data.val_docs(n=10)])
    arc = data.write_jsonl(tmp / "arc.jsonl", data.ARC * 3)
    wino = data.write_jsonl(tmp / "winogrande.jsonl", data.WINOGRANDE * 3)
    ydir = tmp / "yaml"
    ydir.mkdir()
    cache = tmp / "hf_cache"  # keep the datasets cache out of the home directory
    (ydir / "sl_arc.yaml").write_text(MC_YAML.format(
        cache=cache, name="sl_arc", path=arc, text="Question: {{question}}\\nAnswer:",
        target='"{{choices.label.index(answerKey)}}"', choice="{{choices.text}}"))
    (ydir / "sl_winogrande.yaml").write_text(WINOGRANDE_YAML.format(cache=cache, path=wino))
    (ydir / "wg_utils.py").write_text(WG_UTILS)
    (ydir / "sl_mc.yaml").write_text(MC_YAML.format(
        cache=cache, name="sl_mc", path=mc, text="{{query}}", target="gold", choice="{{choices}}"))
    (ydir / "sl_piqa.yaml").write_text(MC_YAML.format(
        cache=cache, name="sl_piqa", path=piqa, text="Question: {{goal}}\\nAnswer:", target="label",
        choice="{{[sol1, sol2]}}"))
    (ydir / "sl_bpb.yaml").write_text(ROLLING_YAML.format(cache=cache, path=heldout))
    (ydir / "sl_lambada.yaml").write_text(CLOZE_YAML.format(cache=cache, path=lambada))
    return {"heldout": heldout, "mc": mc, "piqa": piqa, "lambada": lambada, "arc": arc,
            "winogrande": wino, "yaml": ydir}


@pytest.mark.slow
def test_lm_eval_and_scalinglab_agree(byte_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    from scalinglab.eval.lm_eval_adapter import ScalinglabLM

    paths = write_tasks(tmp_path)
    lm = ScalinglabLM(pretrained=str(byte_run))
    manager = TaskManager(include_path=str(paths["yaml"]), include_defaults=False)
    theirs = lm_eval.simple_evaluate(
        model=lm, tasks=["sl_mc", "sl_piqa", "sl_arc", "sl_winogrande", "sl_bpb", "sl_lambada"],
        task_manager=manager,
        num_fewshot=0, bootstrap_iters=0, log_samples=False)["results"]

    mc = resolve_task(f"mc={paths['mc']}")
    tasks = [dataclasses.replace(mc, spec=dataclasses.replace(mc.spec, name="mc")),
             resolve_task(f"piqa={paths['piqa']}"), resolve_task(f"arc={paths['arc']}"),
             resolve_task(f"winogrande={paths['winogrande']}"),
             resolve_task("heldout_bpb", heldout=paths["heldout"]),
             resolve_task(f"lambada={paths['lambada']}")]
    scorer = Scorer(load_model(byte_run), ByteTokenizer())
    ours = evaluate(scorer, tasks, [0])["tasks"]

    assert_same_results(ours, theirs, ["mc", "piqa", "arc", "winogrande", "heldout_bpb",
                                       "lambada"], rel=1e-6)
    # Not vacuous: the tasks discriminate, and long documents needed several windows.
    assert ours["mc"]["shots"]["0"]["acc"] != ours["mc"]["shots"]["0"]["acc_norm"] or \
        0 < ours["mc"]["shots"]["0"]["acc"] < 1
    assert max(len(d["text"]) for d in data.val_docs(n=30, words=40)) > 64


def test_generate_until_stops_and_matches_the_scorer(byte_run):
    from lm_eval.api.instance import Instance

    from scalinglab.eval.lm_eval_adapter import ScalinglabLM

    lm = ScalinglabLM(pretrained=str(byte_run), tokenizer="bytes")
    free = lm.scorer.generate("Once upon", max_new_tokens=10)
    stop = free[2:4] or "zz"
    req = Instance("generate_until", {}, ("Once upon", {"until": [stop], "max_gen_toks": 10}),
                   0)
    (text,) = lm.generate_until([req])
    assert text == free[: free.index(stop)] if stop in free else text == free
