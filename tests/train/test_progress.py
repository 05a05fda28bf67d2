"""The training bar's average since the session started, its ETA, and the measured wall-time
estimate of ``train --dry-run``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from scalinglab.cli import main
from scalinglab.train.callbacks import ProgressCallback, format_duration, session_rate


def test_session_rate_by_hand():
    # 20 steps of 1024 tokens in 10 s: 2048 tokens/s; 80 steps left at 0.5 s each: 40 s
    assert session_rate(20, 10.0, 80, 1024) == pytest.approx((2048.0, 40.0))
    assert session_rate(0, 0.0, 10, 1024) == (0.0, math.inf)
    assert format_duration(40.0) == "00:40" and format_duration(3725) == "1:02:05"
    assert format_duration(math.inf) == "?"


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_bar_shows_average_beside_current_and_eta_from_it(tmp_path):
    """A resumed session (from step 50) of 1 fast step then a slow one (an evaluation): the
    average counts both, the current value only the last step."""
    clock = FakeClock()
    trainer = SimpleNamespace(plan=SimpleNamespace(steps=100, tokens_per_step=1000),
                              run_dir=Path(tmp_path / "run"), step=50)
    cb = ProgressCallback(clock=clock)
    cb.on_start(trainer, resume_step=50)
    trainer.step, clock.t = 51, 100.1
    cb.post_step(trainer, {"train_loss": 3.0, "tokens_per_s": 10000.0, "mfu": 0.1})
    trainer.step, clock.t = 52, 102.0  # this step took 1.9 s
    post = cb.postfix(trainer, {"train_loss": 2.9, "tokens_per_s": 10000.0, "mfu": 0.1})
    cb.on_end(trainer, {})
    # 2 steps in 2.0 s since the session started: 1000 tokens/s; 48 steps left: 48 s
    assert post["tok/s"] == "10000 (avg 1000)"
    assert post["eta"] == "00:48"


def test_dry_run_prints_a_measured_estimate(shards, tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--data", str(shards), "--tokens", "8192",
                 "--out", str(out_dir), "model.max_seq_len=32", "batch_tokens=512",
                 "--dry-run"]) == 0
    cap = capsys.readouterr()
    wall = json.loads(cap.out)["wall_time"]
    line = next(x for x in cap.err.splitlines() if x.startswith("expected wall time"))
    assert "estimate" in line and "3 measured steps" in line and "16 steps" in line
    assert wall["estimate"] is True and wall["steps"] == 16 and wall["step_s"] > 0
    # 16 steps, evaluations every 16 // 10 = 1 step: 16 of them
    assert wall["wall_s"] == pytest.approx(16 * wall["step_s"] + 16 * wall["eval_s"])
    assert not out_dir.exists()  # the probe saves nothing


def test_dry_run_of_a_huge_preset_does_not_probe(shards, tmp_path, capsys):
    assert main(["train", "--preset", "gpt3-175b", "--data", str(shards), "--tokens", "1e9",
                 "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "expected wall time: not measured" in err and "GiB" in err
