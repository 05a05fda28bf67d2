"""The report's sections for compare-adaptation and bias read their files; none without."""

from __future__ import annotations

import json

from scalinglab.report.analyses import adaptation_section, bias_section


def test_sections_show_the_files_and_vanish_without_them(tmp_path):
    assert adaptation_section(tmp_path) == "" and bias_section(tmp_path) == ""
    (tmp_path / "adaptation-src.json").write_text(json.dumps({
        "task": "src", "metric": "acc", "shots": [0, 5], "chance": 1 / 3,
        "runs": [{"run_id": "r1", "params_total": 100, "shots": {"0": 0.25, "5": 0.5},
                  "finetuned": 0.75, "finetune_gain": 0.25}]}))
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "bias.json").write_text(json.dumps({
        "model": str(run), "params_total": 100,
        "gender": {"mean_abs_log_ratio": 1.5, "mean_log_ratio": -1.25},
        "sentiment": {"categories": {"country": {"range": 0.125}}}}))
    (tmp_path / "runs" / "r2").mkdir()
    (tmp_path / "runs" / "r2" / "bias.json").write_text("{torn")  # skipped, not fatal
    a, b = adaptation_section(tmp_path), bias_section(tmp_path)
    assert "<td>0.250</td><td>0.500</td><td>0.750</td><td>0.250</td>" in a
    assert "<td>r1</td><td>100</td><td>1.500</td><td>-1.250</td><td>0.125</td>" in b
