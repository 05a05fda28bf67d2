"""A synthetic study on disk for the report's tests: study.csv and metrics.jsonl written
directly (no training), losses from a known law L(N, D) = E + A/N^alpha + B/D^beta, and the
real fit stage (``fit_study``) run on them, so fits.json is what the report meets in use."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from scalinglab.scaling.fits_io import fit_study
from scalinglab.scaling.study import STUDY_COLUMNS

LAW = {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28}


def law_loss(n, d) -> np.ndarray:
    return LAW["E"] + LAW["A"] / np.asarray(n) ** LAW["alpha"] + LAW["B"] / np.asarray(
        d) ** LAW["beta"]


def write_study(root: Path, budgets=(1e15, 3e15, 1e16), sizes=5, noise=0.004,
                concave: float | None = None, seed: int = 0, n_boot: int = 20,
                holdout: bool = False) -> Path:
    """IsoFLOP runs of ``sizes`` models per budget, C = 6ND. ``concave``: that budget's losses
    are bent into an upside-down parabola (its IsoFLOP fit then has no minimum)."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in budgets:
        n_opt = 0.09 * b ** 0.5  # near the law's optimum: the grid brackets it
        for i, n in enumerate(n_opt * np.logspace(-0.8, 0.8, sizes)):
            d = b / (6 * n)
            loss = float(law_loss(n, d) + rng.normal(0, noise))
            if b == concave:
                loss = 3.0 - 0.05 * (i - (sizes - 1) / 2) ** 2
            run_id = f"iso-{b:.0e}-{i}"
            rows.append({"run_id": run_id, "kind": "isoflop", "budget": f"{b:.6g}",
                         "n_layers": 2, "d_model": 64, "n_heads": 2,
                         "params_non_embedding": int(n * 0.9), "params_total": int(n),
                         "tokens": int(d), "flops_kaplan": 6 * 0.9 * n * d,
                         "flops_total_6n": 6 * n * d, "flops_chinchilla": 6 * n * d,
                         "flop_convention": "chinchilla", "final_train_loss": loss + 0.01,
                         "final_val_loss": loss, "wall_time_s": 1.0, "status": "complete",
                         "error": ""})
            _write_curve(root / "runs" / run_id, n, d, loss, b == concave)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "study.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=STUDY_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    fit_study(root, n_boot=n_boot, seed=seed, holdout=holdout)
    return root


def _write_curve(run: Path, n: float, d: float, final: float, flat: bool) -> None:
    """A training curve ending at the run's final loss (the law along its tokens)."""
    run.mkdir(parents=True, exist_ok=True)
    tokens = np.geomspace(d / 50, d, 12)
    loss = law_loss(n, tokens) - law_loss(n, d) + final if not flat else np.full(12, final)
    with open(run / "metrics.jsonl", "w") as f:
        for t, v in zip(tokens, loss, strict=True):
            f.write(json.dumps({"step": int(t), "tokens": int(t), "flops": 6 * n * t,
                                "train_loss": float(v) + 0.01, "val_loss": float(v)}) + "\n")


@pytest.fixture(scope="module")
def good_study(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("good") / "study", holdout=True)


@pytest.fixture(scope="module")
def bad_study(tmp_path_factory) -> Path:
    """Two budgets, the larger one concave: Approach 2 cannot be fitted."""
    return write_study(tmp_path_factory.mktemp("bad") / "study", budgets=(1e15, 3e15),
                       concave=3e15)
