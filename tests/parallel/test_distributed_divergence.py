"""The distributed trainer rejects non-finite steps on every rank alike (its loss and gradient
norm are all-reduced) and applies nan_policy as the single-process one does (torchrun, gloo)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from scalinglab.model.presets import tiny
from scalinglab.testing.distributed import run_distributed_test
from scalinglab.train.config import TrainConfig
from tests.conftest import make_shards

pytestmark = [pytest.mark.distributed]

POISONED = 5  # data batch whose first rank's slice yields NaN embeddings
RUNS = {
    "stop": ["nan_policy=stop"],
    "skip": ["nan_policy=skip"],
    "rollback": ["nan_policy=rollback", "checkpoint_every=2"],
    "lr1e6_rollback": ["nan_policy=rollback", "lr=1e6", "nan_retries=1"],
}


def poisoned_runs(base_config: str, out_root: str) -> None:
    """On every rank: train each of RUNS under fsdp=2 with batch POISONED made NaN on rank 0."""
    import torch.distributed as dist

    from scalinglab.parallel.trainer import DistributedTrainer

    base = TrainConfig.from_file(base_config)
    for name, overrides in RUNS.items():
        cfg = base.merge([*overrides, "parallel.fsdp=2", f"out={Path(out_root) / name}"])
        trainer = DistributedTrainer(cfg, progress=False)
        if dist.get_rank() == 0:
            first = POISONED * trainer.plan.batch_seqs  # rank 0's slice starts the batch
            bad = trainer.train_data.batch(first, trainer.local_batch)[0]

            def hook(module, args, out, bad=bad):
                return out * math.nan if torch.equal(args[0].cpu(), bad) else None

            trainer.model.tok_embeddings.register_forward_hook(hook)
        trainer.fit()
        trainer.close()


def test_distributed_nan_policies(tmp_path):
    data = make_shards(tmp_path / "shards")
    base = TrainConfig(model=tiny().merge({"vocab_size": 64, "max_seq_len": 32}),
                       data=str(data), tokens=12 * 512, batch_tokens=512, eval_tokens=512,
                       lr=3e-3)
    base.to_json(tmp_path / "base.json")
    run_distributed_test("tests.parallel.test_distributed_divergence:poisoned_runs", 2,
                         str(tmp_path / "base.json"), str(tmp_path / "runs"))

    def summary(name):
        return json.loads((tmp_path / "runs" / name / "summary.json").read_text(),
                          parse_constant=lambda t: pytest.fail(f"{t} in {name}/summary.json"))

    stop, skip, rollback = summary("stop"), summary("skip"), summary("rollback")
    assert (stop["status"], stop["diverged_step"], stop["steps"]) == ("diverged", 6, 5)
    assert (skip["status"], skip["nonfinite_steps"], skip["steps"]) == ("complete", 1, 12)
    assert (rollback["status"], rollback["nonfinite_steps"]) == ("complete", 1)
    assert summary("lr1e6_rollback")["status"] == "diverged"
    assert not (tmp_path / "runs" / "stop" / "model.safetensors").exists()
    rows = [json.loads(line) for line in
            (tmp_path / "runs" / "rollback" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train_loss" in r] == list(range(1, 13))
    assert [(r["step"], r["at_step"]) for r in rows if r.get("event")] == [(4, 6)]
