"""End to end on a tiny real study: the demo's stages (byte-level fallback corpus, small
budgets), the fits, the comparison, and a self-contained report; a second run resumes."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.pipeline.demo import DemoConfig, format_summary, run_demo
from scalinglab.scaling.study import read_study_csv


def tiny_demo(tmp_path) -> DemoConfig:
    return DemoConfig(out=str(tmp_path / "demo"), corpus="stdlib", seq_len=32,
                      budgets=[1.5e9, 3e9, 6e9, 1.2e10], trust_factor=4.0, sizes=3,
                      tokens_per_param=20.0, workers=1, bootstrap=40, eval_tokens=1024,
                      steps=100)


@pytest.mark.slow
def test_demo_end_to_end_report_and_resume(tmp_path, capsys):
    cfg = tiny_demo(tmp_path)
    summary = run_demo(cfg)
    study = tmp_path / "demo" / "study"
    rows = read_study_csv(study / "study.csv")
    assert summary["runs_complete"] == len(rows) >= 9
    assert {r["budget"] for r in rows} >= set(cfg.budgets)

    # the largest budget was forecast from the smaller ones before any of its runs existed
    forecast = json.loads((study / "forecast.json").read_text())
    assert forecast["budget"] == 1.2e10
    assert forecast["extrapolation"] == pytest.approx(2.0, rel=0.1)
    smaller = [r for r in rows if r["budget"] < 1.2e10]  # grids and bracketing runs
    largest = [r for r in rows if r["budget"] == 1.2e10]
    assert 9 <= forecast["n_train_runs"] <= len(smaller) and len(largest) >= 3
    assert forecast["loss_ci"][0] < forecast["loss"]
    cmp = summary["comparison"]
    assert cmp["n_opt_forecast"] == forecast["n_opt"]
    assert cmp["optimal"]["val_loss"] > 0 and cmp["larger"]["val_loss"] > 0
    assert cmp["params_ratio"] > 2  # "4x larger" up to the shape generator's granularity
    assert isinstance(cmp["optimal_won"], bool)

    fits = json.loads((study / "fits.json").read_text())
    assert fits["n_runs"] == len(rows) and "holdout" in fits
    trust = summary["trust"]  # fitted on budgets <= 1.2e10 / 4, predicting 1.2e10
    assert trust["extrapolation"] >= 4 and trust["loss_ci"][0] <= trust["loss"] <= trust[
        "loss_ci"][1]
    assert summary["forecast"]["achieved_loss"] == trust["achieved"]["loss"]
    text = format_summary(summary)
    assert "report:" in text and "fitted a" in text and "trust check (" in text
    assert "forecast before training C=1.2e+10" in text

    page = (study / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 5
    for img in images:
        assert base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(https?:)?//', page)  # self-contained
    for heading in ("IsoFLOP profiles", "Fitted laws", "Chinchilla vs Gopher", "Forecast",
                    "Can we trust the extrapolation?"):
        assert heading in page

    # resume: nothing is retrained, the fits are reused
    mtimes = {p: p.stat().st_mtime_ns for p in study.glob("runs/*/summary.json")}
    fits_mtime = (study / "fits.json").stat().st_mtime_ns
    again = run_demo(cfg)
    assert again["runs_complete"] == summary["runs_complete"]
    assert {p: p.stat().st_mtime_ns for p in study.glob("runs/*/summary.json")} == mtimes
    assert (study / "fits.json").stat().st_mtime_ns == fits_mtime

    # the report CLI on the same study
    assert main(["report", str(study), "--out", str(tmp_path / "r.html")]) == 0
    assert "report:" in capsys.readouterr().out and (tmp_path / "r.html").stat().st_size > 0


def test_report_without_fits_or_runs_degrades(tmp_path, shards):
    """A study with a failed run and no fits.json still renders, with notes."""
    from scalinglab.report import write_report
    from scalinglab.scaling.launch import record_failure
    from scalinglab.scaling.study_dir import load_plan, plan_study
    from scalinglab.scaling.sweep_config import SweepConfig

    study = tmp_path / "s"
    plan_study(study, SweepConfig().merge({"data": str(shards), "seq_len": 32,
                                           "isoflop.budgets": [8e9],
                                           "width_multiple": 4}))
    record_failure(study, load_plan(study)[0].run_id, "RuntimeError: boom")
    page = write_report(study).read_text()
    assert "No fits.json yet" in page and "boom" in page and "runs failed" in page


def test_eval_results_headline_metrics():
    from scalinglab.report.figures import flat_metrics

    result = {"model": "runs/x", "seed": 0, "bits_per_byte": 2.3, "tasks": {
        "piqa": {"type": "multiple_choice", "shots": {"0": {
            "acc": 0.61, "acc_norm": 0.63, "n": 100, "clean": {"acc": 0.6, "n": 90}}}},
        "heldout_bpb": {"type": "rolling", "shots": {"0": {"bits_per_byte": 2.3, "n": 4}}}}}
    assert flat_metrics(result) == {"piqa 0-shot acc": 0.61, "piqa 0-shot acc_norm": 0.63,
                                    "heldout_bpb 0-shot bits_per_byte": 2.3}


@pytest.mark.slow
def test_demo_eval_stage_scores_every_run(tmp_path):
    """With held-out documents beside the shards, every finished run gets a results.json and
    the report plots downstream scores against compute."""
    from scalinglab.pipeline.demo import eval_stage
    from scalinglab.report import write_report
    from scalinglab.scaling.study import run_dir

    cfg = tiny_demo(tmp_path)
    run_demo(cfg)
    study, shards = tmp_path / "demo" / "study", tmp_path / "demo" / "shards-stdlib"
    assert eval_stage(cfg, study, shards)["skipped"].endswith("(fallback corpus)")
    # Two-letter words: the tiny demo's byte-level models see only 32 bytes of context.
    rng = np.random.default_rng(0)
    words = ["if", "in", "is", "or", "as", "to", "of", "on", "by", "do"]
    docs = [{"text": " ".join(rng.choice(words, size=60)), "id": str(i), "source": "stdlib"}
            for i in range(12)]
    (shards / "val_docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = eval_stage(cfg.merge(["eval_limit=8"]), study, shards)
    rows = [r for r in read_study_csv(study / "study.csv") if r["status"] == "complete"]
    assert out["runs"] == len(rows)
    for r in rows:
        results = json.loads((run_dir(study, r["run_id"]) / "results.json").read_text())
        assert 0 <= results["tasks"]["heldout_continuation"]["shots"]["0"]["acc"] <= 1
    assert "Scores against compute." in write_report(study).read_text()


def test_summary_says_4x_larger_with_the_ratio_as_built():
    """One wording: the model is "4x larger" (as in the headings); the ratio of the shapes
    that ran is given beside it, not in its place."""
    cmp = {"budget": 4e11, "optimal_won": True, "params_ratio": 4.3, "tokens_ratio": 4.2,
           "optimal": {"params": 1.9e4, "tokens": 3.5e6, "val_loss": 3.437},
           "larger": {"params": 8.2e4, "tokens": 8.6e5, "val_loss": 3.568}}
    summary = {"data": "d", "runs_complete": 20, "runs_failed": 0, "bracketing_added": [],
               "a": {"approach1": None, "approach2": 0.5, "approach3": None}, "a_ci": {},
               "trust": {}, "forecast": {}, "comparison": cmp,
               "downstream": {"optimal": 0.26, "larger": 0.25}, "allocation": [],
               "wall_s": 60.0, "cpu_s": 120.0, "report": "r.html"}
    text = format_summary(summary)
    assert "vs 4x larger N=8.2e+04 (4.3x as built" in text
    assert "compute-optimal 0.260 vs 4x larger 0.250" in text
    assert "4.3x larger" not in text
