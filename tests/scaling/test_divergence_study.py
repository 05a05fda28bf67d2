"""Diverged runs in a study: failed with the reason in study.csv, excluded (and counted) by the
fit's reader, ignored by IsoFLOP bracketing, never retried as if they had crashed."""

from __future__ import annotations

import json
import math

from scalinglab.scaling.fitdata import load_study
from scalinglab.scaling.launch import execute_run, run_sweep
from scalinglab.scaling.study import (
    _final_loss,
    edge_extensions,
    read_study_csv,
    run_dir,
    run_status,
)
from scalinglab.scaling.study_dir import load_plan, load_sweep_config
from scalinglab.scaling.sweep import params_of
from tests.scaling.test_launch import tiny_study


def set_lr(study, run_id: str, lr: float) -> None:
    plan = json.loads((study / "plan.json").read_text())
    for r in plan["runs"]:
        if r["run_id"] == run_id:
            r["train"]["lr"] = lr
    (study / "plan.json").write_text(json.dumps(plan))


def test_a_diverged_run_is_failed_with_its_reason_and_not_fitted(shards, tmp_path):
    study = tmp_path / "study"
    runs = tiny_study(shards, study)
    bad = runs[0].run_id
    set_lr(study, bad, 1e6)
    outcome = run_sweep(study, bracket=False, progress=False)
    assert (outcome.complete, outcome.failed) == (len(runs) - 1, 1)
    assert run_status(study, bad) == "failed"
    row = next(r for r in read_study_csv(study / "study.csv") if r["run_id"] == bad)
    assert row["status"] == "failed" and row["error"].startswith("diverged at step ")
    assert "non-finite" in row["error"] and row["final_val_loss"] is None

    data = load_study(study)
    assert bad not in data.run_id and len(data) == len(runs) - 1
    assert data.skipped == {"diverged": 1}

    again = run_sweep(study, retry_failed=True, bracket=False, progress=False)
    assert again.trained == 0 and again.failed == 1  # the same config diverges again


def test_execute_run_reports_divergence_as_failure(shards, tmp_path):
    study = tmp_path / "study"
    spec = tiny_study(shards, study)[0]
    cfg = spec.train_config(study).as_dict() | {"lr": 1e6}
    result = execute_run(cfg)
    assert result["status"] == "failed" and result["error"].startswith("diverged at step")


def _finish(study, spec, **summary) -> None:
    d = run_dir(study, spec.run_id)
    d.mkdir(parents=True, exist_ok=True)
    (d / "summary.json").write_text(json.dumps({"status": "complete", **summary}))


def test_bracketing_ignores_a_diverged_run(shards, tmp_path):
    """The largest size diverged after a last finite val loss that looks best: it must not
    put the minimum on the grid's edge (and plan a larger size)."""
    study = tmp_path / "study"
    runs = sorted(tiny_study(shards, study, sizes=5, width_multiple=8),
                  key=lambda r: params_of(r.model, "total"))
    assert len(runs) == 5
    for spec, loss in zip(runs[:4], (3.0, 2.5, 2.8, 2.9), strict=True):
        _finish(study, spec, final_val_loss=loss)
    _finish(study, runs[4], status="diverged", diverged_step=3, reason="non-finite loss",
            final_val_loss=0.5)
    assert edge_extensions(study, load_sweep_config(study), load_plan(study)) == []


def test_bracketing_loss_is_none_unless_complete_and_finite(shards, tmp_path):
    """min() over a NaN returns whatever came first; such runs give no loss at all."""
    study = tmp_path / "study"
    a, b, c = tiny_study(shards, study)[:3]
    _finish(study, a, final_val_loss=math.nan, final_train_loss=math.inf)  # old summary
    _finish(study, b, status="diverged", final_val_loss=2.0)
    _finish(study, c, final_val_loss=None, final_train_loss=2.5)
    assert [_final_loss(study, s) for s in (a, b, c)] == [None, None, 2.5]
