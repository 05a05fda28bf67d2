import json
import random

import pytest

from scalinglab.errors import ScalinglabError
from scalinglab.laws.fitsfile import load_fits, paper_fits
from scalinglab.laws.paper import CHINCHILLA_TABLE3
from scalinglab.laws.parametric import ChinchillaLaw
from scalinglab.model.presets import get_preset
from scalinglab.plan.bigrun import plan_big_run
from scalinglab.plan.hardware import get_gpu

GOPHER_BUDGET = 5.76e23


def test_paper_approach1_reproduces_table3():
    law = paper_fits().methods["approach1"].law
    for n, c, d in CHINCHILLA_TABLE3:
        assert law.optimum(c)[0] == pytest.approx(n, rel=0.05)
        assert law.optimum(c)[1] == pytest.approx(d, rel=0.07)


def test_approach3_frontier_matches_the_closed_form():
    loss = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    assert loss.a == pytest.approx(0.28 / 0.62) and loss.a == pytest.approx(0.46, abs=0.01)
    c = 1e22
    n, d = loss.optimum(c)
    assert 6 * n * d == pytest.approx(c)
    # It is the minimum of L along 6 N D = C.
    for f in (0.8, 1.25):
        assert loss.loss(n, d) < loss.loss(n * f, d / f)


def test_plan_run_lands_on_chinchilla(cli_json):
    plan = cli_json("plan", "run", "--budget", "5.76e23", "--gpus", "1024", "--gpu",
                    "a100-80gb")
    assert plan["law"] == "approach1"
    assert plan["params_total"] == pytest.approx(70e9, rel=0.10)
    assert plan["tokens"] == pytest.approx(1.4e12, rel=0.10)
    assert plan["layout"]["memory"]["fits"]
    assert plan["days"] > 0 and plan["gpu_hours"] == pytest.approx(plan["days"] * 24 * 1024)
    assert 1.8 < plan["loss"] < 2.1 and plan["loss_interval"] is None
    model = plan["model"]
    assert model["n_heads"] % 8 == 0 and model["d_head"] == 128


def _write_fits(path, rng):
    boot = [[1.69 + rng.gauss(0, 0.02), 406.4 * (1 + rng.gauss(0, 0.05)),
             410.7 * (1 + rng.gauss(0, 0.05)), 0.34 + rng.gauss(0, 0.005),
             0.28 + rng.gauss(0, 0.005)] for _ in range(200)]
    boot += [["bad"], [1, 2, 3]]
    path.write_text(json.dumps({
        "flop_convention": "total_6n",
        "approach1": {"a": 0.5, "b": 0.5, "n_coef": 0.09, "d_coef": 1.85, "a_ci": [0.48, 0.52]},
        "approach2": {"a": 0.49},  # incomplete: unusable
        "approach3": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28,
                      "bootstrap": boot},
    }))


def test_fits_file_with_bootstrap_gives_intervals(tmp_path):
    path = tmp_path / "fits.json"
    _write_fits(path, random.Random(0))
    fits = load_fits(path)
    assert set(fits.methods) == {"approach1", "approach3"} and "approach2" in fits.errors
    assert fits.dropped_bootstrap_rows == 2 and len(fits.methods["approach3"].bootstrap) == 200
    plan = plan_big_run(1e22, 64, get_gpu("h100-80gb"), fits=fits, law="approach3",
                        base=get_preset("chinchilla-70b"), global_batch=512)
    lo, hi = plan.loss_interval
    assert lo < plan.loss < hi
    nlo, nhi = plan.n_interval
    assert nlo < plan.n_opt < nhi
    assert any("2 malformed bootstrap rows" in n for n in plan.notes)
    with pytest.raises(ScalinglabError, match="approach2"):
        plan_big_run(1e22, 64, get_gpu("h100-80gb"), fits=fits, law="approach2",
                     base=get_preset("chinchilla-70b"))


def test_plan_run_cli_with_fits_prints_interval(cli, tmp_path):
    path = tmp_path / "fits.json"
    _write_fits(path, random.Random(1))
    rc, out, err = cli("plan", "run", "--budget", "1e22", "--fits", path, "--gpus", "64",
                       "--gpu", "h100-80gb", "--batch", "512")
    assert rc == 0, err
    assert "95% predictive" in out and "approach1 of" in out


@pytest.mark.parametrize("args,needle", [
    (["--budget", "1e15", "--gpus", "8", "--batch", "100000"], "less than one step"),
    (["--budget", "-1", "--gpus", "8"], "budget must be a positive"),
    (["--budget", "1e22", "--gpus", "8", "--gpu", "x100"], "unknown GPU kind"),
    (["--budget", "1e22", "--gpus", "8", "--fits", "/nonexistent/fits.json"], "no such file"),
])
def test_plan_run_errors_are_one_line(cli, args, needle):
    rc, _, err = cli("plan", "run", *args)
    assert rc == 2 and needle in err and err.count("\n") == 1


def test_malformed_fits_file_is_one_line_error(cli, tmp_path):
    path = tmp_path / "fits.json"
    path.write_text('{"approach1": {"a": "half"}}')
    rc, _, err = cli("plan", "run", "--budget", "1e22", "--gpus", "8", "--fits", path)
    assert rc == 2 and "no usable compute-optimal law" in err


def test_kaplan_fits_match_non_embedding_parameters(tmp_path):
    path = tmp_path / "fits.json"
    path.write_text(json.dumps({"flop_convention": "kaplan",
                                "approach1": {"a": 0.5, "b": 0.5, "n_coef": 0.1,
                                              "d_coef": 1 / 0.6}}))
    plan = plan_big_run(1e21, 32, get_gpu("a100-40gb"), fits=load_fits(path),
                        base=get_preset("gpt3-1.3b"), global_batch=256)
    assert plan.params_non_embedding == pytest.approx(plan.n_opt, rel=0.03)
    emb = (50257 + 2048) * plan.model.d_model  # tied vocabulary + learned positions on top
    assert plan.params_total - plan.params_non_embedding == emb
    assert plan.loss is None and any("no loss law fitted" in n for n in plan.notes)
    # The whole budget is spent: 6 N_non-embedding D = C under Kaplan's count.
    assert 6 * plan.params_non_embedding * plan.tokens == pytest.approx(1e21)
    path.write_text(json.dumps({"flop_convention": "furlongs",
                                "approach1": {"a": 0.5, "b": 0.5, "n_coef": 0.1,
                                              "d_coef": 1.6}}))
    with pytest.raises(ScalinglabError, match="unknown flop_convention 'furlongs'"):
        plan_big_run(1e21, 32, get_gpu("a100-40gb"), fits=load_fits(path),
                     base=get_preset("gpt3-1.3b"))
