"""Every layout computes what one process computes: real ``torchrun --standalone`` jobs
(gloo, CPU) train 5 AdamW steps, and their losses and exported weights are compared with a
single-process run of the same seed, data and global batch. Checkpoints saved under one
layout are resumed under another and must continue the uninterrupted curve.

The jobs are batched (several runs per torchrun) because process start-up dominates.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from scalinglab.cli import main
from scalinglab.model.presets import tiny
from scalinglab.testing.distributed import run_distributed_test
from scalinglab.train.checkpoint import load_model
from scalinglab.train.config import TrainConfig
from scalinglab.train.trainer import train
from tests.conftest import make_shards

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

LOSS_TOL, PARAM_TOL = 1e-5, 5e-4
PP4 = ["model.n_layers=4", "model.tie_embeddings=false"]  # pipeline tests: 4 untied layers
MICRO = ["micro_batch_size=2"]  # enough micro-batches for every pipeline stage

JOB2 = {  # 2 processes
    "ddp": ["parallel.dp=2", "micro_batch_size=2"],  # gradient accumulation under no_sync
    "fsdp": ["parallel.fsdp=2"],
    "zero2": ["parallel.fsdp=2", "parallel.reshard_after_forward=false", "micro_batch_size=2"],
    "zero1": ["parallel.dp=2", "parallel.shard_optimizer=true", "micro_batch_size=2"],
    "selective_ac": ["parallel.fsdp=2", "parallel.activation_checkpoint=selective"],
    "tp": ["parallel.tp=2"],
    "pp_gpipe": [*PP4, *MICRO, "parallel.pp=2", "parallel.pp_schedule=gpipe"],
    "pp_1f1b": [*PP4, *MICRO, "parallel.pp=2", "parallel.pp_schedule=1f1b"],
    "pp_interleaved": [*PP4, *MICRO, "parallel.pp=2", "parallel.pp_schedule=interleaved_1f1b"],
}
JOB4 = {  # 4 processes; resume_* continue a 2-process run's step-3 checkpoint
    "fsdp_tp": ["parallel.fsdp=2", "parallel.tp=2"],
    "resume_fsdp_as_fsdp_tp": ["parallel.fsdp=2", "parallel.tp=2"],
    "resume_zero1_as_fsdp_tp": ["parallel.fsdp=2", "parallel.tp=2"],
}
JOB8 = {  # 8 processes
    "pp_fsdp_tp": [*PP4, *MICRO, "parallel.pp=2", "parallel.fsdp=2", "parallel.tp=2"],
    "resume_pp_as_pp_fsdp_tp": [*PP4, *MICRO, "parallel.pp=2", "parallel.fsdp=2",
                                "parallel.tp=2"],
}
RESUMED_FROM = {"resume_fsdp_as_fsdp_tp": "fsdp", "resume_zero1_as_fsdp_tp": "zero1",
                "resume_pp_as_pp_fsdp_tp": "pp_1f1b",
                "resume_3d_in_one_process": "pp_fsdp_tp"}
ALL = {**JOB2, **JOB4, **JOB8, "resume_3d_in_one_process": PP4}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Train the single-process references and every layout; returns the runs' root."""
    root = tmp_path_factory.mktemp("parity")
    data = make_shards(root / "shards", vocab_size=256)
    base = TrainConfig(model=tiny(), data=str(data), tokens=5 * 512, batch_tokens=512,
                       eval_tokens=256, checkpoint_every=3, keep_checkpoints=5, device="cpu",
                       threads=1, seed=0)
    base.to_json(root / "base.json")
    for name, overrides in (("ref", []), ("ref_pp", PP4)):
        train(base.merge([*overrides, f"out={root / name}"]), progress=False)
    job = "scalinglab.testing.distributed:train_modes"
    run_distributed_test(job, 2, str(root / "base.json"), JOB2, str(root))
    for resumed in ("resume_fsdp_as_fsdp_tp", "resume_zero1_as_fsdp_tp",
                    "resume_pp_as_pp_fsdp_tp"):
        _truncate_copy(root / RESUMED_FROM[resumed], root / resumed, keep_step=3)
    run_distributed_test(job, 4, str(root / "base.json"), JOB4, str(root))
    run_distributed_test(job, 8, str(root / "base.json"), JOB8, str(root), timeout=600)
    # One process, no torchrun: `scalinglab train` continues a sharded 3-D checkpoint.
    _truncate_copy(root / "pp_fsdp_tp", root / "resume_3d_in_one_process", keep_step=3)
    assert main(["train", "--config", str(root / "base.json"), "--quiet",
                 "--out", str(root / "resume_3d_in_one_process"), *PP4, *MICRO]) == 0
    return root


def _truncate_copy(src: Path, dst: Path, keep_step: int) -> None:
    """A copy of a finished run as if it had been killed right after step ``keep_step``."""
    shutil.copytree(src, dst)
    for p in (dst / "checkpoints").iterdir():
        if p.name != f"step-{keep_step:08d}":
            shutil.rmtree(p)
    for name in ("summary.json", "model.safetensors", "model_config.json"):
        (dst / name).unlink()
    assert (dst / "checkpoints" / f"step-{keep_step:08d}" / "trainer.json").exists()


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").open()]


@pytest.mark.parametrize("name", list(ALL))
def test_layout_matches_single_process(runs: Path, name: str) -> None:
    ref = runs / ("ref_pp" if PP4[0] in ALL[name] else "ref")
    run = runs / name
    losses, ref_losses = _losses(run), _losses(ref)
    assert len(losses) == len(ref_losses) == 5
    assert max(abs(a - b) for a, b in zip(losses, ref_losses, strict=True)) < LOSS_TOL
    params, ref_params = load_file(str(run / "model.safetensors")), load_file(
        str(ref / "model.safetensors"))
    assert params.keys() == ref_params.keys()
    worst = max(float((params[k] - ref_params[k]).abs().max()) for k in params)
    assert worst < PARAM_TOL, f"{name}: parameters differ by {worst:.2e}"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 5 and summary["tokens"] == 5 * 512
    ref_val = json.loads((ref / "summary.json").read_text())["final_val_loss"]
    assert abs(summary["final_val_loss"] - ref_val) < LOSS_TOL  # the same validation windows
    assert summary["world_size"] == _world_size(ALL[name])


def _world_size(overrides: list[str]) -> int:
    degrees = [int(o.split("=")[1]) for o in overrides
               if o.split("=")[0] in ("parallel.dp", "parallel.fsdp", "parallel.tp", "parallel.pp")]
    n = 1
    for d in degrees:
        n *= d
    return n


@pytest.mark.parametrize("name", list(RESUMED_FROM))
def test_resume_under_another_layout(runs: Path, name: str) -> None:
    """Steps 4-5 after resharding the step-3 checkpoint equal the uninterrupted run's."""
    source = runs / RESUMED_FROM[name]
    before = json.loads((source / "summary.json").read_text())["parallel"]
    after = json.loads((runs / name / "summary.json").read_text())["parallel"]
    assert before != after
    resumed, uninterrupted = _losses(runs / name), _losses(source)
    assert [r["step"] for r in map(json.loads, (runs / name / "metrics.jsonl").open())] == [
        1, 2, 3, 4, 5]
    assert max(abs(a - b) for a, b in zip(resumed, uninterrupted, strict=True)) < LOSS_TOL


def test_export_loads_in_a_single_process(runs: Path) -> None:
    model = load_model(runs / "pp_fsdp_tp")
    assert sum(p.numel() for p in model.parameters()) == json.loads(
        (runs / "ref_pp" / "summary.json").read_text())["params_total"]
