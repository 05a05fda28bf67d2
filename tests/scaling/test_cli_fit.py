"""`scalinglab fit` and `scalinglab allocate` end to end, in-process."""

from __future__ import annotations

import json

import pytest

from scalinglab.cli import main
from scalinglab.scaling.reference import chinchilla_csv

# numerical trouble (overflow, 0/0) in the fits is a bug, not noise
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def test_fit_study_writes_fits_json(study, capsys):
    assert main(["fit", str(study), "--bootstrap", "40", "--holdout-largest"]) == 0
    out = capsys.readouterr().out
    assert "approach3" in out and "holdout" in out
    fits = json.loads((study / "fits.json").read_text())
    assert fits["flop_convention"] == "total_6n" and fits["n_runs"] == 28
    for key in ("approach1", "approach2", "approach3", "kaplan", "holdout"):
        assert key in fits
    assert {"budget", "n_opt", "d_opt", "loss_min"} <= set(fits["approach2"]["minima"][0])
    assert len(fits["approach2"]["parabolas"][0]["coef"]) == 3
    assert len(fits["approach3"]["bootstrap"][0]) == 5
    assert "loss_error_pct" in fits["holdout"]

    assert main(["allocate", "--budget", "1e22", "--fits", str(study / "fits.json"),
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    # the recommended law first, the published ones last
    assert rows[0]["source"] == f"fit: {fits['recommended']['method']} (recommended)"
    assert rows[-1]["source"] == "Kaplan et al. 2020"
    assert main(["allocate", "--sizes", "400e6,1e9", "--fits", str(study / "fits.json")]) == 0
    assert "fit: approach3" in capsys.readouterr().out


def test_bad_input_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "runs.csv"
    bad.write_text("params,tokens,loss\n1e8,2e9,3.1\n2e8,oops,3.0\n")
    assert main(["fit", "--csv", str(bad), "--out", str(tmp_path / "f.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"{bad}:3: field 'tokens'" in err
    assert main(["allocate", "--sizes", "1e9,big"]) == 2
    assert main(["allocate", "--budget", "1e21", "--fits", str(tmp_path / "none.json")]) == 2


def test_fit_csv_on_chinchilla_reference(tmp_path):
    path = chinchilla_csv()
    if path is None:
        pytest.skip("reference data absent: shared/reference/chinchilla/ is not beside the repo")
    out = tmp_path / "fits.json"
    assert main(["fit", "--csv", str(path), "--drop-worst", "5", "--bootstrap", "20",
                 "--out", str(out)]) == 0
    fits = json.loads(out.read_text())
    assert fits["n_runs"] == 240
    assert fits["approach3"]["E"] == pytest.approx(1.8172, rel=0.01)
    assert fits["approach3"]["a"] == pytest.approx(0.514, rel=0.01)
    assert "error" in fits["approach2"]  # Figure 4's runs are no IsoFLOP profiles


def test_fit_study_api_writes_strict_json(study):
    from scalinglab.laws.fitsfile import read_fits_json
    from scalinglab.scaling.fits_io import fit_study

    fits = fit_study(study, n_boot=10, holdout=True)
    on_disk = read_fits_json(study / "fits.json")
    assert on_disk == json.loads(json.dumps(fits))
    assert "NaN" not in (study / "fits.json").read_text()
    assert on_disk["holdout"]["budget"] == 1e21


def test_summary_of_a_law_without_optimum_does_not_crash(capsys):
    """fits.json stores a Kaplan fit without an optimum with a, b = null (strict JSON):
    the summary printed after writing it used to crash formatting None."""
    from scalinglab.cli.fit import print_summary

    fits = {"n_runs": 12, "flop_convention": "total_6n", "n_bootstrap": 0, "ci_level": 0.95,
            "kaplan": {"N_c": 1e13, "D_c": 1e13, "alpha_N": 0.07, "alpha_D": -0.01,
                       "a": None, "b": None, "n_coef": None, "d_coef": None},
            "approach3": {"error": "approach3 needs >= 6 runs, got 5"}}
    print_summary(fits)
    out = capsys.readouterr().out
    assert "kaplan: fitted, but has no compute-optimal size" in out
    assert "approach3: approach3 needs >= 6 runs" in out
