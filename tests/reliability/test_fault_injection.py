"""Fault injection: SIGKILL `data prepare`, `data tokenize`, `train` and `sweep run --workers 2`
at seeded points (mid-write, mid-rename, mid-checkpoint, a torn metrics line, the sweep's
parent), rerun the same command, and require output identical to an uninterrupted run.

The harness is ``scalinglab.testing.faults`` (also ``benchmarks/fault_injection.py``); set
SCALINGLAB_FAULT_SEED to draw other kill points.
"""

from __future__ import annotations

import os
import random

import pytest

from scalinglab import io as sio
from scalinglab.testing.faults import choose, count_line, run_all

POINTS = 22
SEED = int(os.environ.get("SCALINGLAB_FAULT_SEED", "0"))


def test_the_hook_is_inert_without_the_variable():
    # The suite sets SCALINGLAB_FAULT only in the subprocesses it starts.
    assert sio._FAULT is None
    sio.fault_point("write")


def test_kill_points_cover_checkpoints_and_renames(tmp_path):
    sites = [f"write {tmp_path}/run/config.json", f"rename {tmp_path}/run/config.json",
             *(f"append {tmp_path}/run/metrics.jsonl" for _ in range(10)),
             f"write {tmp_path}/run/checkpoints/step-00000004.pt",
             f"rename {tmp_path}/run/checkpoints/step-00000004.pt",
             f"renamed {tmp_path}/run/checkpoints/step-00000004.pt"]
    chosen = choose(sites, 4, random.Random(0), tmp_path)
    assert len(set(chosen)) == 4
    assert ("write:2", "run/checkpoints/step-00000004.pt") in chosen  # mid-checkpoint
    assert any(f.startswith("rename:") for f, _ in chosen)


@pytest.mark.slow
def test_every_kill_point_resumes_identically(tmp_path):
    results = run_all(tmp_path, POINTS, SEED)
    line = count_line(results)
    print(line)
    failed = [f"{kp.stage} {kp.where}: {kp.problem}" for kps in results.values()
              for kp in kps if not kp.identical]
    assert not failed, "\n".join(failed)
    assert all(results[stage] for stage in ("prepare", "tokenize", "train", "sweep"))
    assert line == f"{POINTS} kill points, {POINTS} resumed identically"
