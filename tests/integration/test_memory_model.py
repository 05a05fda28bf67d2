"""The planner's bytes per rank for weights, gradients and optimizer state equal what the
trainer allocates on each rank (4 gloo processes, CPU, fp32) within 5%, for FSDP (ZeRO-3),
DDP + ZeRO-1, TP, PP x FSDP and TP x PP (``benchmarks/memory_check.py`` prints the table)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import memory_check  # noqa: E402

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def test_planned_state_bytes_match_allocated_bytes_per_rank(tmp_path):
    rows = memory_check.run(tmp_path)
    assert len(rows) == len(memory_check.LAYOUTS) * memory_check.WORLD * 3
    worst = max(rows, key=lambda r: abs(r["ratio"] - 1))
    assert abs(worst["ratio"] - 1) < 0.05, worst
    # ZeRO-1 really shards the optimizer state: each rank holds about a quarter of it.
    zero1 = [r for r in rows if r["layout"].startswith("dp4") and r["part"] == "optimizer"]
    full = [r for r in rows if r["layout"].startswith("dp4") and r["part"] == "weights"]
    assert sum(r["measured"] for r in zero1) == pytest.approx(2 * full[0]["measured"])
