"""`scalinglab predict` and `scalinglab backtest` through the CLI, and one N_opt everywhere."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.laws.fitsfile import load_fits
from scalinglab.model.presets import get_preset
from scalinglab.plan.bigrun import plan_big_run
from scalinglab.plan.hardware import get_gpu
from tests.scaling.conftest import TRUE_LAW, make_study


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    study = make_study(tmp_path_factory.mktemp("fc") / "study")
    assert main(["fit", str(study), "--bootstrap", "40"]) == 0
    return study / "fits.json"


def test_predict_json_shape_and_interval(fitted, capsys):
    capsys.readouterr()
    assert main(["predict", "--fits", str(fitted), "--params", "1e9,3e9", "--tokens", "2e10",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    fits = json.loads(fitted.read_text())
    assert out["method"] == fits["recommended"]["method"]
    assert [p["params"] for p in out["predictions"]] == [1e9, 3e9]
    for p in out["predictions"]:
        assert set(p) >= {"params", "tokens", "loss", "lo", "hi"}
        assert p["lo"] < p["loss"] < p["hi"]
        # the study was drawn from TRUE_LAW with 0.3% noise; 1e9 x 2e10 is inside its range
        assert p["loss"] == pytest.approx(TRUE_LAW.loss(p["params"], p["tokens"]), rel=0.02)
        assert p["lo"] <= TRUE_LAW.loss(p["params"], p["tokens"]) <= p["hi"]


def test_predict_from_csv_and_method_choice(fitted, tmp_path, capsys):
    path = tmp_path / "points.csv"
    path.write_text("params,tokens\n1e8,2e9\n1e10,2e11\n")
    capsys.readouterr()
    assert main(["predict", "--fits", str(fitted), "--csv", str(path), "--method", "kaplan"]) == 0
    out = capsys.readouterr().out
    assert "method: kaplan" in out and "95% interval" in out and "extrapolation" in out


@pytest.mark.parametrize("args,needle", [
    (["--params", "1e9,2e9,3e9", "--tokens", "1e10,2e10"], "equally many"),
    (["--params", "-1", "--tokens", "1e10"], "must be positive"),
    (["--params", "big", "--tokens", "1e10"], "not a number"),
    (["--params", "1e9"], "give --params N... and --tokens D..."),
    (["--params", "1e9", "--tokens", "1e10", "--method", "approach3_tied"], None),
])
def test_predict_bad_input_is_one_line(fitted, capsys, args, needle):
    capsys.readouterr()
    rc = main(["predict", "--fits", str(fitted), *args])
    err = capsys.readouterr().err
    if needle is None:
        assert rc == 0
    else:
        assert rc == 2 and needle in err and err.count("\n") == 1


def test_backtest_csv_json_and_plot(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "runs.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["params", "tokens", "my_loss", "corpus"])
        for c in np.logspace(17, 21, 9):
            for n in TRUE_LAW.optimum(c)[0] * np.logspace(-0.5, 0.5, 5):
                d = c / (6 * n)
                w.writerow([n, d, TRUE_LAW.loss(n, d) * np.exp(rng.normal(0, 0.003)), "a"])
        w.writerow([1e8, 1e9, 9.9, "b"])  # another corpus: filtered out
    png = tmp_path / "bt.png"
    capsys.readouterr()
    assert main(["backtest", "--csv", str(path), "--loss-column", "my_loss", "--where",
                 "corpus=a", "--factors", "4,100", "--methods", "approach3,approach3_tied",
                 "--bootstrap", "30", "--json", "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_runs"] == 45
    scores = {(r["method"], r["factor"]): r for r in out["scores"]}
    assert set(scores) == {("approach3", 4.0), ("approach3", 100.0), ("approach3_tied", 4.0),
                           ("approach3_tied", 100.0)}
    a3 = scores[("approach3", 100.0)]
    assert a3["n_heldout"] == 20 and a3["median_abs_err_pct"] < 1.5 and 0 <= a3["coverage"] <= 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(out["runs"]["approach3@100"]) == 20


def test_backtest_bad_input(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1e8,2e9,3.1\n1e8,2e9,0\n")
    assert main(["backtest", "--csv", str(path)]) == 2
    assert f"{path}:3: field 'loss' must be a positive number" in capsys.readouterr().err
    assert main(["backtest", "--csv", str(path), "--loss-column", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert main(["backtest", "--csv", str(path), "--methods", "magic"]) == 2
    assert "unknown magic" in capsys.readouterr().err


def test_allocate_and_plan_agree_on_n_opt_in_the_chinchilla_convention(tmp_path, capsys):
    """One law module: allocate and plan run read N_opt through the same reader and k."""
    study = make_study(tmp_path / "s")
    rows = list(csv.DictReader((study / "study.csv").open()))
    for r in rows:
        r["flop_convention"] = "chinchilla"  # C = 6.6 N D in this synthetic study
    with (study / "study.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert main(["fit", str(study), "--bootstrap", "20"]) == 0
    fits_path = study / "fits.json"
    assert json.loads(fits_path.read_text())["flops_per_param_token"] == pytest.approx(6.6)
    capsys.readouterr()
    assert main(["allocate", "--budget", "1e22", "--fits", str(fits_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    alloc = next(r for r in rows if r["method"] == "approach3" and r["source"].startswith("fit"))
    plan = plan_big_run(1e22, 64, get_gpu("h100-80gb"), fits=load_fits(fits_path),
                        law="approach3", base=get_preset("chinchilla-70b"), global_batch=512)
    assert plan.n_opt == pytest.approx(alloc["n_opt"], rel=1e-9)
    assert 6.6 * alloc["n_opt"] * alloc["d_opt"] == pytest.approx(1e22)


def test_fit_reports_non_positive_and_nan_losses(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text("params,tokens,loss\n1e8,2e9,3.1\n2e8,2e9,nan\n3e8,2e9,-1\n")
    assert main(["fit", "--csv", str(path), "--out", str(tmp_path / "f.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:4: field 'loss' must be a positive number" in err
    path.write_text("params,tokens,loss\n" + "".join(
        f"{n},{d},{TRUE_LAW.loss(n, d)}\n" for n in (1e8, 3e8, 1e9) for d in (2e9, 6e9, 2e10))
        + "1e8,1e9,nan\n")
    assert main(["fit", "--csv", str(path), "--out", str(tmp_path / "f.json"),
                 "--bootstrap", "5"]) == 0
    assert "skipped: 1 non-finite loss" in capsys.readouterr().out
