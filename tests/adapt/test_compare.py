"""compare-adaptation on a two-run study: a record per run, resumable, a table and a figure."""

from __future__ import annotations

import json

from scalinglab.cli import main
from scalinglab.eval.api import evaluate_run
from scalinglab.model.presets import tiny
from scalinglab.model.transformer import build_model
from scalinglab.train.checkpoint import export_model


def test_compare_adaptation_writes_and_resumes(rule_task, tmp_path, capsys):
    study = tmp_path / "study"
    for name, d in (("small", 16), ("large", 32)):
        cfg = tiny().merge({"vocab_size": 257, "max_seq_len": 32, "d_model": d})
        export_model(study / "runs" / name, build_model(cfg, seed=0), cfg)
    # an earlier `scalinglab eval` of another task: results.json then holds two tasks
    other = rule_task.with_name("other.yaml")
    other.write_text(rule_task.read_text().replace("name: rule", "name: other"))
    evaluate_run(study / "runs" / "small", [str(other)], [0], progress=False)
    args = ["compare-adaptation", str(study), "--task", str(rule_task), "--shots", "0,1",
            "epochs=4", "eval_every=3", "threads=1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "fine-tuned" in out and "small" in out and "large" in out
    summary = json.loads((study / "adaptation-rule.json").read_text())
    assert [r["run_id"] for r in summary["runs"]] == ["small", "large"]  # by size
    for r in summary["runs"]:
        assert set(r["shots"]) == {"0", "1"} and 0 <= r["finetuned"] <= 1
        best = max(r["shots"].values())
        assert abs(r["finetune_gain"] - (r["finetuned"] - best)) < 1e-12
    assert (study / "adaptation-rule.png").stat().st_size > 0
    results = json.loads((study / "runs" / "small" / "results.json").read_text())
    assert summary["runs"][0]["shots"]["0"] == results["tasks"]["rule"]["shots"]["0"]["acc"]
    record = study / "adaptation" / "rule" / "small.json"
    mtime = record.stat().st_mtime_ns
    assert main([*args, "--json"]) == 0  # everything present: nothing is redone
    assert record.stat().st_mtime_ns == mtime
    assert json.loads(capsys.readouterr().out)["runs"] == summary["runs"]


def test_unknown_run_is_one_line(rule_task, tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    code = main(["compare-adaptation", str(tmp_path), "--task", str(rule_task),
                 "--runs", "nope"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "no finished run 'nope'" in err
