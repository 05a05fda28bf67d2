"""A run killed with SIGKILL and restarted with the same command ends bit-identical (CPU)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalinglab.train import checkpoint as ckpt
from tests.train.test_checkpoint import curve

SRC = Path(__file__).resolve().parents[2] / "src"
STEPS = 100


def command(shards: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "scalinglab", "train", "--preset", "tiny", "--data",
            str(shards), "--tokens", str(STEPS * 512), "--out", str(out), "--quiet",
            "model.max_seq_len=32", "batch_tokens=512", "checkpoint_every=10", "eval_every=25",
            "eval_tokens=512", "threads=1", "lr=3e-3"]


def run_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigkill_then_rerun_is_bit_identical(shards, tmp_path):
    killed_run = tmp_path / "killed"
    proc = subprocess.Popen(command(shards, killed_run), env=run_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not ckpt.checkpoint_steps(killed_run) and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert not (killed_run / "summary.json").exists()  # killed mid-way
    killed_at = ckpt.checkpoint_steps(killed_run)[-1]
    assert killed_at < STEPS

    # The resumed run and an uninterrupted one, side by side.
    runs = [subprocess.Popen(command(shards, out), env=run_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
            for out in (killed_run, tmp_path / "straight")]
    for done in runs:
        _, err = done.communicate(timeout=300)
        assert done.returncode == 0, err
    assert len(curve(killed_run)) == STEPS
    assert curve(killed_run) == curve(tmp_path / "straight")
