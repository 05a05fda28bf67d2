"""Approaches 1 and 2, study loading, bootstrap output and the hold-out check."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from scalinglab.errors import ScalinglabError
from scalinglab.scaling.bootstrap import fit_all
from scalinglab.scaling.fit import (
    Curve,
    fit_approach1,
    fit_approach2,
    fit_isoflop,
    fit_power_law,
    group_budgets,
    isoflop_minima,
)
from scalinglab.scaling.fitdata import load_csv, load_study
from scalinglab.scaling.holdout import holdout_largest
from tests.scaling.conftest import TRUE_LAW, make_study

# numerical trouble (overflow, 0/0) in the fits is a bug, not noise
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def test_power_law_recovers_exponent():
    c = np.logspace(18, 22, 9)
    law = fit_power_law(c, 0.1 * c**0.5)
    assert law.exponent == pytest.approx(0.5)
    assert law.coef == pytest.approx(0.1)
    with pytest.raises(ScalinglabError):
        fit_power_law([1e20, 1e20], [1.0, 2.0])


def isoflop_runs(budgets, law=TRUE_LAW, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    b, n, d, loss = [], [], [], []
    for c in budgets:
        for x in law.optimum(c)[0] * np.logspace(-0.7, 0.7, 9):
            b.append(c)
            n.append(x)
            d.append(c / (6 * x))
            loss.append(law.loss(x, c / (6 * x)) * np.exp(rng.normal(0, noise)))
    return np.array(b), np.array(n), np.array(d), np.array(loss)


def test_approach2_recovers_exponents():
    b, n, d, loss = isoflop_runs(np.logspace(18, 21, 4), noise=0.002)
    alloc, minima = fit_approach2(b, n, d, loss)
    assert alloc.n_law.exponent == pytest.approx(TRUE_LAW.a, abs=0.03)
    assert alloc.d_law.exponent == pytest.approx(TRUE_LAW.b, abs=0.03)
    assert all(m.interior for m in minima)
    for m in minima:  # each parabola's minimum is near the true optimum for its budget
        assert m.n_opt == pytest.approx(TRUE_LAW.optimum(m.budget)[0], rel=0.15)
        assert m.d_opt == pytest.approx(m.budget / (6 * m.n_opt), rel=1e-6)


def test_isoflop_without_minimum_is_rejected():
    n = np.logspace(8, 9, 5)
    assert fit_isoflop(1e19, n, 1e19 / (6 * n), -np.log(n) ** 2) is None  # concave
    assert fit_isoflop(1e19, n[:2], n[:2], n[:2]) is None  # too few sizes
    # a profile whose sizes all lie left of the optimum: the minimum is off the grid's edge
    b, n2, d2, loss2 = isoflop_runs([1e19, 1e20])
    left = n2 < TRUE_LAW.optimum(1e20)[0] / 2
    keep = (b == 1e19) | left
    m19, m20 = isoflop_minima(b[keep], n2[keep], d2[keep], loss2[keep])
    assert m19.interior and not m20.interior
    with pytest.raises(ScalinglabError, match="approach 2"):
        fit_approach2(np.full(5, 1e19), n, 1e19 / (6 * n), np.log(n) ** 2)


def test_approach1_envelope_recovers_exponents():
    # 30 model sizes, each trained over a wide token range, with noisy curves and two runs
    # that went wrong (loss 30% high): the envelope of minimal loss ignores the bad runs
    rng = np.random.default_rng(0)
    curves = []
    for i, n in enumerate(np.logspace(7, 10, 30)):
        d = np.logspace(8, 12.5, 200)
        loss = TRUE_LAW.loss(n, d) * np.exp(rng.normal(0, 0.001, d.size))
        loss *= 1.3 if i in (10, 20) else 1.0
        curves.append(Curve(params=n, flops=6 * n * d, tokens=d, loss=loss))
    alloc = fit_approach1(curves)
    assert alloc.n_law.exponent == pytest.approx(TRUE_LAW.a, abs=0.03)
    assert alloc.d_law.exponent == pytest.approx(TRUE_LAW.b, abs=0.03)


def test_group_budgets():
    spread = np.logspace(21.5, 22.3, 12)  # gaps of 0.07 dex, 0.8 dex in all
    c = np.concatenate([[1e19, 1.05e19, 0.97e19, 1e20, 1.1e20], spread])
    labels = group_budgets(c)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:5])) == 1
    assert labels[0] == pytest.approx(1e19, rel=0.05)
    assert np.isnan(labels[5:]).all()  # continuous spread: not an IsoFLOP group


def test_load_study_reads_runs_and_curves(study):
    data = load_study(study)
    assert len(data) == 28 and data.skipped == {"failed": 1}
    assert data.flop_convention == "total_6n"
    assert data.flops_per_param_token == pytest.approx(6.0)
    curve = data.curves[0]
    assert curve.flops.size == 10  # val-loss rows only
    # metrics.jsonl flops are chinchilla-convention; converted back to the study's total_6n
    assert curve.flops[-1] == pytest.approx(data.flops[0], rel=1e-6)
    assert curve.loss[-1] == pytest.approx(data.loss[0])


def test_load_study_errors_name_file_line_field(study):
    path = study / "study.csv"
    rows = list(csv.DictReader(path.open()))
    rows[3]["tokens"] = "lots"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(ScalinglabError, match=r"study.csv:5: field 'tokens'"):
        load_study(study)
    with pytest.raises(ScalinglabError, match="no such file"):
        load_study(study / "nowhere")


def test_load_csv_derives_tokens_and_budgets(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,flops,loss\n1e8,1e19,3.0\n2e8,1e19,2.9\n4e8,1e19,2.95\n")
    data = load_csv(path)
    assert data.tokens[0] == pytest.approx(1e19 / 6e8)
    assert np.all(data.budget == pytest.approx(1e19))
    path.write_text("params,loss\n1e8,3\n")
    with pytest.raises(ScalinglabError, match="needs columns"):
        load_csv(path)


def test_fit_all_contract_and_intervals(study):
    fits = fit_all(load_study(study), n_boot=100)
    for key in ("approach1", "approach2"):
        f = fits[key]
        assert {"a", "b", "n_coef", "d_coef", "a_ci", "b_ci"} <= set(f), f
        assert f["a_ci"][0] <= f["a"] <= f["a_ci"][1]
        assert len(f["bootstrap"]) == f["n_bootstrap_ok"] > 50 and len(f["bootstrap"][0]) == 4
    a2 = fits["approach2"]
    assert len(a2["minima"]) == 4 and len(a2["parabolas"]) == 4
    assert a2["a_ci"][0] - 0.02 <= TRUE_LAW.a <= a2["a_ci"][1] + 0.02
    assert all(m["n_opt_ci"][0] <= m["n_opt"] <= m["n_opt_ci"][1] for m in a2["minima"])
    a3 = fits["approach3"]
    assert a3["a"] == pytest.approx(TRUE_LAW.a, abs=0.05)
    assert len(a3["bootstrap"]) == 100 and set(a3["ci"]) >= {"E", "alpha", "beta", "a", "b"}
    # N_opt = n_coef C^a matches the G (C/6)^a formula
    from scalinglab.laws.parametric import ChinchillaLaw
    law = ChinchillaLaw(*(a3[k] for k in ("E", "A", "B", "alpha", "beta")))
    assert a3["n_coef"] * 1e22 ** a3["a"] == pytest.approx(law.optimum(1e22)[0])
    assert "alpha_N" in fits["kaplan"]


def lo_hi_contains(ci, x) -> bool:
    return ci[0] <= x <= ci[1]


def test_holdout_predicts_largest_budget(tmp_path):
    data = load_study(make_study(tmp_path / "s", budgets=(1e18, 1e19, 1e20, 1e21), noise=0.002))
    ho = holdout_largest(data, n_boot=50)
    assert ho["budget"] == 1e21 and ho["n_heldout_runs"] == 7 and ho["n_train_runs"] == 21
    assert abs(ho["loss_error_pct"]) < 2.0
    pred = ho["predicted"][ho["method"]]  # the law the training runs' backtest recommends
    assert lo_hi_contains(pred["loss_ci"], pred["loss"]) and ho["covered"]
    assert ho["n_opt_ratio"] == pytest.approx(1.0, abs=0.3)
    with pytest.raises(ScalinglabError, match=">= 3 IsoFLOP budgets"):
        holdout_largest(data.subset(data.budget <= 1e19), n_boot=0)


def test_nonfinite_losses_are_skipped_and_counted(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1e8,2e9,3.1\n2e8,2e9,nan\n3e8,2e9,inf\n4e8,1e9,2.9\n")
    data = load_csv(path)
    assert len(data) == 2 and data.skipped == {"non-finite loss": 2}
    fits = fit_all(data, n_boot=5)
    assert "needs >= 6 runs" in fits["approach3"]["error"]
    path.write_text("params,tokens,loss\n0,2e9,3.1\n")
    with pytest.raises(ScalinglabError, match=r"runs.csv:2: field 'params' must be a positive"):
        load_csv(path)


def test_kaplan_convention_uses_non_embedding_parameters(study):
    path = study / "study.csv"
    path.write_text(path.read_text().replace(",total_6n,", ",kaplan,"))
    data = load_study(study)
    rows = list(csv.DictReader(path.open()))
    assert data.flop_convention == "kaplan"
    assert data.params[0] == pytest.approx(float(rows[0]["params_non_embedding"]))
    assert data.flops[0] == pytest.approx(float(rows[0]["flops_kaplan"]))
    assert data.curves[0].flops[-1] == pytest.approx(data.flops[0], rel=1e-6)
