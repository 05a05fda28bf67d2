"""Fine-tuning on a task's training split: it learns, the test split is scored as `eval` scores
it, a finished fine-tuning is not redone, and bad input gets one line."""

from __future__ import annotations

import json

import pytest

from scalinglab.adapt.finetune import EarlyStopping, FinetuneConfig, finetune
from scalinglab.cli import main
from scalinglab.eval.api import evaluate_run
from scalinglab.model.presets import tiny
from scalinglab.model.transformer import build_model
from scalinglab.train.checkpoint import export_model
from tests.adapt.conftest import write_jsonl

CFG = FinetuneConfig(epochs=8, batch_size=16, lr=1e-2, eval_every=3, patience=4, threads=1)


def test_finetune_learns_the_rule_and_matches_eval(byte_run, rule_task, tmp_path):
    out = tmp_path / "ft"
    before, _ = evaluate_run(byte_run, [str(rule_task)], [0], progress=False)
    results, path = finetune(byte_run, str(rule_task), out, CFG, progress=False)
    acc = results["test"]["acc"]
    assert results["n_train"] == 144 and results["n_valid"] == 16 and results["n_test"] == 60
    assert results["chance"] == pytest.approx(0.5)
    assert acc >= 0.9 > before["tasks"]["rule"]["shots"]["0"]["acc"] + 0.2
    # the same weights through `scalinglab eval`'s own path give the same score
    again, _ = evaluate_run(out, [str(rule_task)], [0], progress=False)
    assert again["tasks"]["rule"]["shots"]["0"]["acc"] == acc
    # the run directory is an ordinary one: summary, metrics with validation losses
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["best_step"] == results["train"]["best_step"]
    # done: a second call returns the file as it is, without training
    mtime = path.stat().st_mtime_ns
    assert finetune(byte_run, str(rule_task), out, CFG, progress=False)[0] == results
    assert path.stat().st_mtime_ns == mtime


def test_early_stopping_stops_after_patience_and_keeps_the_best(tmp_path):
    model_cfg = tiny().merge({"vocab_size": 257, "max_seq_len": 32})

    class Trainer:  # the attributes the callback reads
        run_dir, model, stop_requested, step = tmp_path, build_model(model_cfg), False, 0
        plan = type("Plan", (), {"steps": 100})()
        cfg = type("Cfg", (), {"model": model_cfg})()

    es, t = EarlyStopping(patience=2), Trainer()
    es.on_start(t, None)
    for step, loss in [(1, 2.0), (2, 1.0), (3, 1.5), (4, 1.2)]:
        t.step, row = step, {"val_loss": loss}
        es.post_step(t, row)
        assert t.stop_requested == (step == 4)
    assert (es.best, es.best_step) == (1.0, 2) and row["event"] == "early_stop"
    assert (tmp_path / "best" / "model.safetensors").is_file()
    es.post_step(t, {"train_loss": 1.0})  # a step without evaluation changes nothing
    assert es.bad == 2


def test_no_training_split_is_one_line(byte_run, tmp_path, capsys):
    data = write_jsonl(tmp_path / "piqa.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b",
                                                   "label": 0}])
    code = main(["finetune", str(byte_run), "--task", f"piqa={data}", "--out",
                 str(tmp_path / "ft")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "piqa has no training split" in err


def test_unknown_task_is_one_line(byte_run, tmp_path, capsys):
    code = main(["finetune", str(byte_run), "--task", "nosuch", "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "unknown task 'nosuch'" in err


def test_run_without_tokenizer_is_one_line(rule_task, tmp_path, capsys):
    run = tmp_path / "bpe_run"  # vocab 300: not bytes, and no tokenizer file anywhere
    cfg = tiny().merge({"vocab_size": 300, "max_seq_len": 32})
    export_model(run, build_model(cfg, seed=0), cfg)
    code = main(["finetune", str(run), "--task", str(rule_task), "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "cannot find the run's tokenizer" in err
