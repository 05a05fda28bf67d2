"""``torchrun ... -m scalinglab train --parallel ...``: the CLI path, its run directory and its
one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalinglab.cli import main
from scalinglab.testing.distributed import DistributedTestError, torchrun
from scalinglab.train.checkpoint import load_model
from tests.conftest import make_shards

ARGS = ["-m", "scalinglab", "train", "--preset", "tiny", "--tokens", "2048", "--quiet"]
OVERRIDES = ["batch_tokens=512", "eval_tokens=256", "device=cpu"]


@pytest.mark.distributed
@pytest.mark.slow
def test_cli_under_torchrun_writes_a_single_process_run_directory(tmp_path: Path) -> None:
    data = make_shards(tmp_path / "shards", vocab_size=256)
    out = tmp_path / "run"
    proc = torchrun([*ARGS, "--data", str(data), "--out", str(out), "--parallel", "fsdp=2",
                     "--json", *OVERRIDES], world_size=2)
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])  # printed by rank 0 only
    assert proc.stdout.count('"final_val_loss"') == 1
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["parallel"]["fsdp"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # one writer: no duplicated rows
    assert json.loads((out / "config.json").read_text())["parallel"]["fsdp"] == 2
    assert sum(p.numel() for p in load_model(out).parameters()) == summary["params_total"]
    with pytest.raises(DistributedTestError, match="error: parallel: micro_batch_size=8"):
        torchrun([*ARGS, "--data", str(data), "--out", str(tmp_path / "bad"),
                  "--parallel", "fsdp=2", *OVERRIDES, "micro_batch_size=8"], world_size=2)


def test_parallel_layout_outside_torchrun_is_a_clear_error(tmp_path: Path, capsys,
                                                            monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    data = make_shards(tmp_path / "shards", vocab_size=256)
    code = main(["train", "--preset", "tiny", "--data", str(data), "--tokens", "2048",
                 "--out", str(tmp_path / "run"), "--parallel", "tp=2", "batch_tokens=512"])
    assert code == 2
    assert "runs under torchrun" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--data", str(data), "--parallel", "zz=2",
                 "--tokens", "1"]) == 2
    assert "'zz=2' is not one of dp=N" in capsys.readouterr().err


@pytest.mark.distributed
@pytest.mark.slow
def test_locked_run_directory_stops_every_rank(tmp_path: Path, lock_holder) -> None:
    """Rank 0 cannot take the lock: all ranks stop with its one line (none waits in a barrier)."""
    data = make_shards(tmp_path / "shards", vocab_size=256)
    out = tmp_path / "run"
    pid = lock_holder(out)
    with pytest.raises(DistributedTestError, match=f"being written by process {pid}"):
        torchrun([*ARGS, "--data", str(data), "--out", str(out), "--parallel", "fsdp=2",
                  *OVERRIDES], world_size=2, timeout=120)
    assert not (out / "config.json").exists()


@pytest.mark.distributed
@pytest.mark.slow
def test_torn_newest_sharded_checkpoint_falls_back(tmp_path: Path) -> None:
    data = make_shards(tmp_path / "shards", vocab_size=256)
    out = tmp_path / "run"
    cmd = [*ARGS, "--data", str(data), "--out", str(out), "--parallel", "fsdp=2", *OVERRIDES,
           "checkpoint_every=2", "keep_checkpoints=2"]
    torchrun(cmd, world_size=2)
    straight = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    (out / "summary.json").unlink()  # as if killed after the last checkpoint
    shard = sorted((out / "checkpoints" / "step-00000004").glob("*.distcp"))[-1]
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size // 2)
    proc = torchrun(cmd, world_size=2)
    assert "skipping unreadable checkpoint" in proc.stdout + proc.stderr
    resumed = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    timing = ("tokens_per_s", "mfu", "elapsed")
    assert [{k: v for k, v in r.items() if k not in timing} for r in resumed] == \
        [{k: v for k, v in r.items() if k not in timing} for r in straight]
