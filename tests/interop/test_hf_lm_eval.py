"""``lm_eval --model hf`` on an exported run: EleutherAI's own HF model class (not our
adapter) reports the same numbers as ``scalinglab eval`` on the same local tasks."""

from __future__ import annotations

import dataclasses

import pytest

from scalinglab.cli import main
from scalinglab.eval.runner import evaluate
from scalinglab.eval.scoring import Scorer
from scalinglab.eval.tasks import resolve_task
from scalinglab.eval.tokenizer import ByteTokenizer
from scalinglab.model.transformer import build_model
from scalinglab.train.checkpoint import export_model, load_model
from tests.eval import data
from tests.eval.conftest import byte_model
from tests.eval.test_lm_eval_adapter import assert_same_results, write_tasks
from tests.interop.test_hf_export import LLAMA

pytest.importorskip("lm_eval", reason="pip install '.[eval]'")
pytest.importorskip("transformers", reason="pip install '.[hf]'")


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["gpt2", "llama"])
def test_lm_eval_hf_on_export_agrees_with_scalinglab_eval(tmp_path, monkeypatch, layout):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    model = byte_model(max_seq_len=64)  # GPT-2 layout
    if layout == "llama":
        model = build_model(model.config.merge(LLAMA), seed=0)
        model.tok_embeddings.weight.data.mul_(5.0)  # peaked outputs, as byte_model does
    export_model(tmp_path / "run", model, model.config)
    hf_dir = tmp_path / "hf"
    assert main(["export", str(tmp_path / "run"), "--to", "hf", "--out", str(hf_dir)]) == 0

    paths = write_tasks(tmp_path)
    manager = TaskManager(include_path=str(paths["yaml"]), include_defaults=False)
    theirs = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={hf_dir},dtype=float32,device=cpu",
        tasks=["sl_mc", "sl_piqa", "sl_bpb", "sl_lambada"], task_manager=manager,
        num_fewshot=0, bootstrap_iters=0, log_samples=False)["results"]

    mc = resolve_task(f"mc={paths['mc']}")
    tasks = [dataclasses.replace(mc, spec=dataclasses.replace(mc.spec, name="mc")),
             resolve_task(f"piqa={paths['piqa']}"),
             resolve_task("heldout_bpb", heldout=paths["heldout"]),
             resolve_task(f"lambada={paths['lambada']}")]
    ours = evaluate(Scorer(load_model(tmp_path / "run"), ByteTokenizer()), tasks, [0])["tasks"]

    assert_same_results(ours, theirs, ["mc", "piqa", "heldout_bpb", "lambada"], rel=1e-5)
    # Not vacuous: documents longer than the 64-token context needed several windows.
    assert max(len(d["text"]) for d in data.val_docs(n=30, words=40)) > 64
