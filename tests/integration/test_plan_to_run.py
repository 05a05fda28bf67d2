"""Three of the planner's top-10 layouts for a small model on 8 "GPUs", run by the trainer
as the planner's own commands describe them (8 gloo processes, CPU), train exactly the
single-process losses (as ``test_torchrun_parity`` checks the hand-written layouts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalinglab.plan.launch import run_config
from scalinglab.testing.distributed import run_distributed_test
from scalinglab.train.config import TrainConfig
from scalinglab.train.trainer import train
from tests.conftest import make_shards
from tests.plan.test_launch import SEQ, SMALL, top10

pytestmark = [pytest.mark.distributed, pytest.mark.slow]
STEPS, LOSS_TOL = 3, 1e-5


FIELDS = ("tp", "pp", "dp", "zero_stage", "recompute", "micro_batch")


def three_different(layouts):
    """The fastest layout, then twice the one that differs most from those already picked
    (in degrees, ZeRO stage, recomputation, micro-batch)."""
    picked = [layouts[0]]
    while len(picked) < 3:
        def distance(c):
            return min(sum(getattr(c, f) != getattr(p, f) for f in FIELDS) for p in picked)
        picked.append(max((c for c in layouts if c not in picked), key=distance))
    return picked


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("plan_to_run")
    data = make_shards(root / "shards", vocab_size=256)
    layouts = three_different(top10())
    assert len(layouts) == 3
    jobs = {}
    for i, layout in enumerate(layouts):
        run = run_config(SMALL, layout, SEQ, preset="tiny", tokens=STEPS * layout.global_batch
                         * SEQ)
        run = run.merge({"data": str(data), "dtype": "fp32", "device": "cpu", "threads": 1,
                         "eval_tokens": 128, "seed": 0})
        run.to_json(root / f"l{i}.json")
        jobs[f"l{i}"] = layout.describe()
    # The single-process reference: the same config without the layout.
    ref = TrainConfig.from_file(root / "l0.json").merge({"out": str(root / "ref")})
    ref = ref.merge({"parallel": {}, "micro_batch_size": 0})
    train(ref, progress=False)
    for name in jobs:
        run_distributed_test("scalinglab.testing.distributed:train_modes", 8,
                             str(root / f"{name}.json"), {name: []}, str(root), timeout=600)
    return root, list(jobs.values())


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").open()]


@pytest.mark.parametrize("i", range(3))
def test_planned_layout_trains_the_single_process_losses(runs, i):
    root, labels = runs
    losses, ref = _losses(root / f"l{i}"), _losses(root / "ref")
    assert len(losses) == len(ref) == STEPS
    worst = max(abs(a - b) for a, b in zip(losses, ref, strict=True))
    assert worst < LOSS_TOL, f"{labels[i]}: losses differ by {worst:.2e}"
    summary = json.loads((root / f"l{i}" / "summary.json").read_text())
    assert summary["world_size"] == 8
