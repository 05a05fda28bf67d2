"""Sweep planning: IsoFLOP grids, fixed-size and depth-width sets, the LR/batch rules, and
adaptive bracketing (judged from run directories that the test writes)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.config import ConfigError
from scalinglab.model.accounting import count_params
from scalinglab.scaling.study import extend_brackets, run_dir
from scalinglab.scaling.study_dir import load_plan, plan_study
from scalinglab.scaling.sweep import (
    flops_per_token,
    isoflop_runs,
    model_for,
    params_of,
    predicted_optimum,
    resolve_config,
)
from scalinglab.scaling.sweep_config import BatchRule, LRRule, SweepConfig
from scalinglab.train.config import TrainConfig
from scalinglab.train.trainer import plan_run
from scalinglab.units import format_count


def sweep_config(shards, **kw) -> SweepConfig:
    # width_multiple=4: with the default 16 a 64-token vocabulary floors every width at 16
    base = {"data": str(shards), "seq_len": 32, "isoflop.budgets": [2e10, 8e10],
            "isoflop.sizes": 5, "width_multiple": 4}
    base.update(kw)
    return SweepConfig().merge(base)


def test_lr_rule_follows_gpt3_and_clips():
    rule = LRRule()
    assert rule(1.25e8) == pytest.approx(6e-4)
    assert rule(175e9) == pytest.approx(6e-4 / 1400 ** (1 / 3))  # about GPT-3 175B's 0.6e-4
    assert rule(1e6) == pytest.approx(6e-4 * 125 ** (1 / 3))  # 3e-3 at 1M parameters
    assert rule(10.0) == rule.max_lr  # clipped
    sizes = [1e4, 1e6, 1e8, 1e10]
    lrs = [rule(n) for n in sizes]
    assert lrs == sorted(lrs, reverse=True)


def test_batch_rule_power_of_two_and_min_steps():
    rule = BatchRule(min_steps=50)
    for n, tokens in [(1e5, 1e6), (1e8, 1e9), (1e4, 2e5), (1e10, 1e7)]:
        batch = rule(n, tokens, 128)
        seqs = batch // 128
        assert batch % 128 == 0 and seqs & (seqs - 1) == 0
        assert tokens / batch >= 50 or seqs == 1
    assert rule(1.25e8, 1e12, 2048) == 2 ** round(math.log2(524288 / 2048)) * 2048
    assert rule(1e11, 1e12, 2048) > rule(1e8, 1e12, 2048)  # grows with N


def test_batch_rule_steps_follows_run_length():
    """With ``steps`` the batch is tokens / steps in whole sequences, capped by the power law."""
    rule = BatchRule(ref_tokens=32 * 128, exponent=0.0, steps=2000)
    assert rule(1e4, 2000 * 8 * 128, 128) == 8 * 128  # 8 sequences -> exactly 2000 steps
    assert rule(1e4, 1e9, 128) == 32 * 128  # capped: long runs take more steps
    assert rule(1e4, 1e4, 128) == 128  # never below one sequence
    batches = [rule(1e4, t, 128) for t in np.geomspace(2e5, 2e7, 20)]
    assert batches == sorted(batches)  # grows with the run's length


def test_isoflop_grid(shards, tmp_path):
    cfg = sweep_config(shards)
    plan_study(tmp_path / "s", cfg)
    rcfg = resolve_config(cfg)
    runs = load_plan(tmp_path / "s")
    assert {r.kind for r in runs} == {"isoflop"}
    for budget in (2e10, 8e10):
        grid = sorted((r for r in runs if r.budget == budget), key=lambda r: r.target_params)
        assert len(grid) >= 3
        center = predicted_optimum(rcfg, budget)
        targets = [r.target_params for r in grid]
        # log-uniform spacing by `step` around the predicted optimum (a size that rounds to
        # its neighbour's shape moves on by half steps)
        for lo, hi in zip(targets, targets[1:], strict=False):
            halves = 2 * math.log(hi / lo) / math.log(2.0)
            assert halves == pytest.approx(round(halves), abs=1e-9) and halves >= 1
        assert min(targets) < center < max(targets)
        for r in grid:
            model = r.model
            tokens = r.train["tokens"]
            # D = C / (FLOPs per token of the shape), in whole batches: the compute matches
            # the budget within half a batch
            batch = r.train["batch_tokens"]
            assert tokens % batch == 0
            assert abs(tokens * flops_per_token(rcfg, model) - budget) <= (
                0.5 * batch * flops_per_token(rcfg, model) * (1 + 1e-9))
            n_ne = count_params(model).non_embedding
            assert r.train["lr"] == pytest.approx(rcfg.lr(n_ne))
            assert batch == rcfg.batch(n_ne, budget / flops_per_token(rcfg, model), 32)
            assert r.train["flop_convention"] == "chinchilla"
            plan = plan_run(TrainConfig.from_dict(r.train))  # the trainer accepts it
            assert plan.steps >= rcfg.batch.min_steps


def test_predicted_optimum_has_chosen_tokens_per_param(shards):
    cfg = resolve_config(sweep_config(shards, **{"isoflop.tokens_per_param": 20.0}))
    n = predicted_optimum(cfg, 1e13)
    # the fixed point: D / N of the generated shape at n is about 20
    model = model_for(cfg, n)
    d = 1e13 / flops_per_token(cfg, model)
    assert d / params_of(model, cfg.count) == pytest.approx(20.0, rel=0.25)


def test_kaplan_convention_matches_non_embedding(shards, tmp_path):
    cfg = sweep_config(shards, flop_convention="kaplan")
    plan_study(tmp_path / "s", cfg)
    for r in load_plan(tmp_path / "s"):
        ne = count_params(r.model).non_embedding
        half_batch = r.train["batch_tokens"] / 2
        assert abs(r.train["tokens"] * 6 * ne - r.budget) <= half_batch * 6 * ne
    with pytest.raises(ConfigError, match="one convention"):
        plan_study(tmp_path / "s", sweep_config(shards))


def test_fixed_size_and_depth_width(shards, tmp_path):
    cfg = sweep_config(shards, **{"isoflop.budgets": [], "fixed_size.params": [3e4],
                                  "fixed_size.tokens_per_param": [5, 20, 80],
                                  "depth_width.params": [5e4],
                                  "depth_width.aspect_ratios": [2, 16, 128]})
    plan_study(tmp_path / "s", cfg)
    runs = load_plan(tmp_path / "s")
    fixed = [r for r in runs if r.kind == "fixed_size"]
    assert len(fixed) == 3 and len({json.dumps(r.train["model"]) for r in fixed}) == 1
    n = params_of(fixed[0].model, "total")
    for r, mult in zip(sorted(fixed, key=lambda r: r.train["tokens"]), (5, 20, 80), strict=True):
        # each run is planned (and so its cosine spans) its own length, within one batch
        plan = plan_run(TrainConfig.from_dict(r.train))
        assert plan.tokens == r.train["tokens"]
        assert abs(plan.tokens - mult * n) <= plan.tokens_per_step / 2
    dw = [r for r in runs if r.kind == "depth_width"]
    depths = {r.model.n_layers for r in dw}
    assert len(depths) >= 2
    totals = [count_params(r.model).total for r in dw]
    assert max(totals) / min(totals) < 1.5


def test_plan_is_additive_and_rejects_empty(shards, tmp_path):
    study = tmp_path / "s"
    first = plan_study(study, sweep_config(shards, **{"isoflop.budgets": [2e10]}))
    again = plan_study(study, sweep_config(shards, **{"isoflop.budgets": [2e10]}))
    assert first and not again
    more = plan_study(study, sweep_config(shards))
    assert more and all(r.budget == 8e10 for r in more)
    assert len(load_plan(study)) == len(first) + len(more)
    with pytest.raises(ConfigError, match="no runs"):
        plan_study(tmp_path / "t", sweep_config(shards, **{"isoflop.budgets": []}))


def _fake_results(study, losses_by_n):
    """Write summary.json for each IsoFLOP run with a loss that is a function of its N."""
    cfg = json.loads((study / "sweep.json").read_text())
    count = "non_embedding" if cfg["flop_convention"] == "kaplan" else "total"
    for r in load_plan(study):
        d = run_dir(study, r.run_id)
        d.mkdir(parents=True, exist_ok=True)
        n = params_of(r.model, count)
        (d / "summary.json").write_text(json.dumps({"final_val_loss": losses_by_n(n)}))


def test_bracketing_extends_the_edge_holding_the_minimum(shards, tmp_path):
    study = tmp_path / "s"
    plan_study(study, sweep_config(shards, **{"isoflop.budgets": [8e10], "isoflop.sizes": 3}))
    before = load_plan(study)
    largest = max(params_of(r.model, "total") for r in before)
    _fake_results(study, lambda n: 5.0 - math.log(n))  # bigger is always better
    new = extend_brackets(study)
    assert len(new) == 1 and params_of(new[0].model, "total") > largest
    assert new[0].budget == 8e10 and new[0].kind == "isoflop"
    assert extend_brackets(study) == []  # the new run is pending: nothing is judged
    # a minimum in the middle of the grid asks for nothing
    study2 = tmp_path / "s2"
    plan_study(study2, sweep_config(shards, **{"isoflop.budgets": [8e10], "isoflop.sizes": 3}))
    mid = sorted(params_of(r.model, "total") for r in load_plan(study2))[1]
    _fake_results(study2, lambda n: (math.log(n) - math.log(mid)) ** 2)
    assert extend_brackets(study2) == []
    # and the smallest edge extends downwards
    study3 = tmp_path / "s3"
    plan_study(study3, sweep_config(shards, **{"isoflop.budgets": [8e10], "isoflop.sizes": 3}))
    smallest = min(params_of(r.model, "total") for r in load_plan(study3))
    _fake_results(study3, lambda n: math.log(n))
    (low,) = extend_brackets(study3)
    assert params_of(low.model, "total") < smallest


def test_cli_plan_and_status(shards, tmp_path, capsys):
    study = tmp_path / "s"
    assert main(["sweep", "plan", "--data", str(shards), str(study), "seq_len=32",
                 "isoflop.budgets=[2e10]", "width_multiple=4", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned and all(p["kind"] == "isoflop" for p in planned)
    assert main(["sweep", "status", str(study), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {s["status"] for s in status} == {"pending"}
    assert main(["sweep", "plan", str(tmp_path / "x"), "seq_len=32"]) == 2  # no data: error


def test_add_runs_plans_a_run_asked_for_twice_once(tmp_path, shards):
    from scalinglab.scaling.study_dir import add_runs, load_plan, load_sweep_config, plan_study
    from scalinglab.scaling.sweep import resolve_config
    from scalinglab.scaling.sweep_config import SweepConfig

    study = tmp_path / "s"
    cfg = SweepConfig().merge({"data": str(shards), "seq_len": 32, "isoflop.budgets": [8e9],
                              "width_multiple": 4})
    planned = plan_study(study, cfg)
    extra = planned[0]
    scfg = resolve_config(load_sweep_config(study))
    twin = dataclasses.replace(extra, run_id="iso-twin")
    assert [r.run_id for r in add_runs(study, scfg, [twin, twin, extra])] == ["iso-twin"]
    ids = [r.run_id for r in load_plan(study)]
    assert len(ids) == len(set(ids)) == len(planned) + 1


# ---------------------------------------------------------------------- honest planning


def test_collapsing_sizes_stop_with_the_reason(shards, tmp_path):
    """A vocabulary whose embedding outweighs the grid's small sizes cannot give 5 distinct
    shapes at 8e9 with width_multiple=16: planning stops and names the budget and the fix."""
    with pytest.raises(ConfigError) as e:
        plan_study(tmp_path / "s", sweep_config(shards, **{
            "isoflop.budgets": [8e9], "width_multiple": 16, "vocab_size": 256}))
    msg = str(e.value)
    assert "isoflop budget 8e+09" in msg and "isoflop.sizes=5" in msg
    assert "collapse onto the same shapes" in msg and "width_multiple" in msg
    assert "\n" not in msg and not (tmp_path / "s" / "plan.json").exists()


def test_sizes_that_round_together_move_to_distinct_shapes(shards):
    """Where the family has enough shapes, every requested size is planned, each a new shape
    (the test config at 2e10 had two targets on one shape before they were moved on)."""
    cfg = resolve_config(sweep_config(shards, **{"isoflop.budgets": [2e10]}))
    runs = [r for c in cfg.isoflop.budgets for r in isoflop_runs(cfg, c)]
    assert len(runs) == 5 and len({r.run_id for r in runs}) == 5
    sizes = [params_of(r.model, cfg.count) for r in runs]
    assert sizes == sorted(sizes) and len(set(sizes)) == 5


def test_cli_plan_table_shows_the_planned_model(shards, tmp_path, capsys):
    study = tmp_path / "s"
    assert main(["sweep", "plan", "--data", str(shards), str(study), "seq_len=32",
                 "isoflop.budgets=[2e10]", "isoflop.sizes=3", "width_multiple=4"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("run_id"))
    cols = out[header].split()
    assert "params" in cols and "target" in cols
    for line, spec in zip(out[header + 2:], load_plan(study), strict=True):
        cells = dict(zip(cols, line.split(), strict=True))
        # total parameters counted independently of the planner: embedding + blocks
        m = spec.model
        assert cells["params"] == format_count(count_params(m).total)
        assert cells["target"] == format_count(spec.target_params)


def test_degenerate_shapes_warn(shards, tmp_path, capsys):
    """width_multiple=16 on a 64-token vocabulary gives 3 and 6 layers of width 16."""
    assert main(["sweep", "plan", "--data", str(shards), str(tmp_path / "s"), "seq_len=32",
                 "isoflop.budgets=[2e10]", "isoflop.sizes=3"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(err) == 1 and "L6-D16" in err[0] and "width_multiple=16" in err[0]
    assert main(["sweep", "plan", "--data", str(shards), str(tmp_path / "t"), "seq_len=32",
                 "isoflop.budgets=[2e10]", "isoflop.sizes=3", "width_multiple=2"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_bracket_warning_names_the_budget(shards, tmp_path):
    from scalinglab.scaling.study import bracket_warnings

    study = tmp_path / "s"
    plan_study(study, sweep_config(shards, **{"isoflop.budgets": [8e10], "isoflop.sizes": 3}))
    _fake_results(study, lambda n: math.log(n))  # smaller is always better
    (line,) = bracket_warnings(study)
    assert "isoflop budget 8e+10" in line and "smallest shape" in line and "\n" not in line
    study2 = tmp_path / "s2"
    plan_study(study2, sweep_config(shards, **{"isoflop.budgets": [8e10], "isoflop.sizes": 3}))
    mid = sorted(params_of(r.model, "total") for r in load_plan(study2))[1]
    _fake_results(study2, lambda n: (math.log(n) - math.log(mid)) ** 2)
    assert bracket_warnings(study2) == []
    _fake_results(study2, lambda n: -math.log(n))
    assert "largest shape" in bracket_warnings(study2)[0]
