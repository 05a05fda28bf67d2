"""Synthetic scaling studies drawn from a known law, written in the sweep's on-disk format."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from scalinglab.laws.parametric import ChinchillaLaw

TRUE_LAW = ChinchillaLaw(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
STUDY_COLUMNS = ["run_id", "kind", "budget", "n_layers", "d_model", "n_heads",
                 "params_non_embedding", "params_total", "tokens", "flops_kaplan",
                 "flops_total_6n", "flops_chinchilla", "flop_convention", "final_train_loss",
                 "final_val_loss", "wall_time_s", "status", "error"]


def make_study(directory: Path, budgets=(1e18, 1e19, 1e20, 1e21), n_sizes: int = 7,
               noise: float = 0.003, law: ChinchillaLaw = TRUE_LAW, seed: int = 0,
               curve_points: int = 30) -> Path:
    """IsoFLOP runs at each budget (sizes spread x1/4 .. x4 around the true optimum), with a
    training curve per run, plus one failed run. FLOP convention total_6n: C = 6 N D."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in budgets:
        n_opt, _ = law.optimum(c)
        for j, n in enumerate(n_opt * np.logspace(-0.6, 0.6, n_sizes)):
            run_id = f"c{c:.0e}-n{j}"
            d = c / (6 * n)
            loss = float(law.loss(n, d) * np.exp(rng.normal(0, noise)))
            rows.append({"run_id": run_id, "kind": "isoflop", "budget": c, "n_layers": 4,
                         "d_model": 64, "n_heads": 4, "params_non_embedding": 0.9 * n,
                         "params_total": n, "tokens": d, "flops_kaplan": 6 * 0.9 * n * d,
                         "flops_total_6n": c, "flops_chinchilla": 1.1 * c,
                         "flop_convention": "total_6n", "final_train_loss": loss + 0.01,
                         "final_val_loss": loss, "wall_time_s": 1.0, "status": "complete",
                         "error": ""})
            write_curve(directory / "runs" / run_id, n, d, loss, law, curve_points)
    rows.append(dict(rows[0], run_id="broken", status="failed", final_val_loss="",
                     final_train_loss="", error="RuntimeError: out of memory"))
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "study.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=STUDY_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return directory


def write_curve(run_dir: Path, n: float, d: float, final: float, law, points: int) -> None:
    """metrics.jsonl: loss along the run (a cosine run is slightly above the law mid-way)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tokens = d * np.logspace(-2, 0, points)
    loss = law.loss(n, tokens) * (1 + 0.01 * (1 - tokens / d))
    loss *= final / loss[-1]
    with (run_dir / "metrics.jsonl").open("w") as f:
        for step, (t, lv) in enumerate(zip(tokens, loss, strict=True)):
            row = {"step": step, "tokens": t, "flops": 1.1 * 6 * n * t, "train_loss": lv + 0.01}
            if step % 3 == 2 or step == points - 1:
                row["val_loss"] = lv
            f.write(json.dumps(row) + "\n")


@pytest.fixture
def study(tmp_path) -> Path:
    return make_study(tmp_path / "study")
