"""A study's results: run status, ``study.csv`` and adaptive bracketing of IsoFLOP grids.

A run is ``complete`` when its directory holds ``summary.json`` (the trainer writes it last),
``failed`` when it holds ``error.json`` (written by the sweep runner) and no summary, or a
summary that says ``status: diverged`` (the reason goes to the ``error`` column), and
``pending`` otherwise (never started, or killed mid-run: it resumes from its checkpoint).

``study.csv`` has one row per complete or failed run, with exactly the columns of
``STUDY_COLUMNS`` (the fit stage reads them by name).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from scalinglab.io import atomic_write_text
from scalinglab.model.accounting import all_conventions, count_params
from scalinglab.scaling.study_dir import add_runs, load_plan, load_sweep_config
from scalinglab.scaling.sweep import isoflop_run, params_of
from scalinglab.scaling.sweep_config import RunSpec, SweepConfig
from scalinglab.units import format_count

STUDY_COLUMNS = [
    "run_id", "kind", "budget", "n_layers", "d_model", "n_heads", "params_non_embedding",
    "params_total", "tokens", "flops_kaplan", "flops_total_6n", "flops_chinchilla",
    "flop_convention", "final_train_loss", "final_val_loss", "wall_time_s", "status", "error",
]


def run_dir(study: str | Path, run_id: str) -> Path:
    return Path(study) / "runs" / run_id


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when it is missing, torn or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # ValueError: JSONDecodeError and UnicodeDecodeError
        return None
    return data if isinstance(data, dict) else None


def divergence(d: Path) -> str | None:
    """``"diverged at step N: reason"`` when run directory ``d`` ended diverged, else None."""
    s = read_json(d / "summary.json") or {}
    if s.get("status") != "diverged":
        return None
    return f"diverged at step {s.get('diverged_step')}: {s.get('reason', 'non-finite loss')}"


def run_status(study: str | Path, run_id: str) -> str:
    d = run_dir(study, run_id)
    if (d / "summary.json").exists():
        return "failed" if divergence(d) else "complete"
    if (d / "error.json").exists():
        return "failed"
    return "pending"


def study_row(study: str | Path, spec: RunSpec, convention: str) -> dict[str, Any] | None:
    """The study.csv row of one run, or None while it is pending."""
    status = run_status(study, spec.run_id)
    if status == "pending":
        return None
    model = spec.model
    params = count_params(model)
    row: dict[str, Any] = {
        "run_id": spec.run_id, "kind": spec.kind,
        "budget": "" if spec.budget is None else f"{spec.budget:.6g}",
        "n_layers": model.n_layers, "d_model": model.d_model, "n_heads": model.n_heads,
        "params_non_embedding": params.non_embedding, "params_total": params.total,
        "flop_convention": convention, "status": status, "error": "",
        "final_train_loss": "", "final_val_loss": "", "wall_time_s": "",
    }
    d = run_dir(study, spec.run_id)
    if status == "complete":
        s = read_json(d / "summary.json") or {}
        row.update(tokens=s.get("tokens", ""), wall_time_s=_fmt(s.get("wall_time_s")),
                   final_train_loss=_fmt(s.get("final_train_loss")),
                   final_val_loss=_fmt(s.get("final_val_loss")))
        row.update({k: _fmt(s.get(k)) for k in ("flops_kaplan", "flops_total_6n",
                                                   "flops_chinchilla")})
    else:
        tokens = spec.train["tokens"]
        row["tokens"] = tokens
        row.update({k: _fmt(v) for k, v in
                    all_conventions(model, tokens, spec.train.get("seq_len") or None).items()})
        err = read_json(d / "error.json") or {}
        reason = divergence(d) or err.get("error", "unknown error")
        row["error"] = str(reason).replace("\n", " ")[:500]
    return row


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.8g}"
    return str(v)


def collect(study: str | Path) -> list[dict[str, Any]]:
    """Rows of every complete or failed run, in plan order."""
    cfg = load_sweep_config(study)
    rows = (study_row(study, s, cfg.flop_convention.value) for s in load_plan(study))
    return [r for r in rows if r is not None]


def write_study_csv(study: str | Path) -> Path:
    """(Re)write ``STUDY/study.csv`` atomically from the run directories."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=STUDY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(collect(study))
    path = Path(study) / "study.csv"
    return atomic_write_text(path, buf.getvalue())


def read_study_csv(path: str | Path) -> list[dict[str, Any]]:
    """study.csv rows with numbers parsed (empty cells become None)."""
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _parse(v: str) -> Any:
    if v == "":
        return None
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


# ---------------------------------------------------------------------- bracketing


def _final_loss(study: str | Path, spec: RunSpec) -> float | None:
    """The run's final (val, else train) loss; None unless it is complete and finite, so
    bracketing never takes min() over a diverged run's NaN."""
    s = read_json(run_dir(study, spec.run_id) / "summary.json")
    if not s or s.get("status", "complete") != "complete":
        return None
    for key in ("final_val_loss", "final_train_loss"):
        loss = s.get(key)
        if isinstance(loss, int | float) and math.isfinite(loss):
            return float(loss)
    return None


def edge_minima(study: str | Path, cfg: SweepConfig,
                plan: list[RunSpec]) -> list[tuple[float, int, float]]:
    """``(budget, side, edge_size)`` of every finished IsoFLOP grid whose best run is its
    smallest (side -1) or largest (side +1) shape.

    Only budgets whose planned runs are all finished, with at least 3 finite losses, are
    judged.
    """
    by_budget: dict[float, list[RunSpec]] = {}
    for spec in plan:
        if spec.kind == "isoflop" and spec.budget is not None:
            by_budget.setdefault(spec.budget, []).append(spec)
    edges = []
    for budget, specs in sorted(by_budget.items()):
        if any(run_status(study, s.run_id) == "pending" for s in specs):
            continue
        done = [(params_of(s.model, cfg.count), _final_loss(study, s)) for s in specs]
        done = sorted((d for d in done if d[1] is not None), key=lambda d: d[0])
        if len(done) < 3:
            continue
        best = min(range(len(done)), key=lambda i: done[i][1])
        if best in (0, len(done) - 1):
            edges.append((budget, -1, done[0][0]) if best == 0 else (budget, 1, done[-1][0]))
    return edges


def edge_extensions(study: str | Path, cfg: SweepConfig,
                    plan: list[RunSpec]) -> list[RunSpec]:
    """New IsoFLOP runs beyond the edge of every grid whose minimum sits on that edge.

    The new size is one grid step beyond the edge size; if that run would be too short to
    plan (too few tokens) the grid cannot be extended on that side and is left as it is.
    """
    known = {s.run_id for s in plan}
    new = (_beyond(cfg, budget, edge, side, known)
           for budget, side, edge in edge_minima(study, cfg, plan))
    return [s for s in new if s is not None]


def bracket_warnings(study: str | Path) -> list[str]:
    """One line per finished IsoFLOP budget whose minimum is still on an edge of its grid:
    its parabola's vertex is an extrapolation, so Approach 2 is unreliable there."""
    cfg = load_sweep_config(study)
    lines = []
    for budget, side, edge in edge_minima(study, cfg, load_plan(study)):
        where = "smallest" if side < 0 else "largest"
        lines.append(f"isoflop budget {budget:.3g}: the lowest loss is at the {where} shape "
                     f"({format_count(edge)} {cfg.count} params), so the optimum is not "
                     f"bracketed; run `scalinglab sweep plan {study} --extend` (or raise "
                     f"bracket_rounds) and `sweep run` again, or drop this budget from fits")
    return lines


def _beyond(cfg: SweepConfig, budget: float, edge: float, direction: int,
            known: set[str]) -> RunSpec | None:
    """The first new shape one, two or three grid steps beyond ``edge``.

    Tiny models have few distinct widths, so one step may land on the edge's own shape.
    """
    for m in (1, 2, 3):
        spec = isoflop_run(cfg, budget, edge * cfg.isoflop.step ** (direction * m))
        if spec is None:
            return None
        if spec.run_id not in known:
            return spec
    return None


def extend_brackets(study: str | Path) -> list[RunSpec]:
    """Add edge-extending IsoFLOP runs to the study's plan; returns the new runs."""
    cfg = load_sweep_config(study)
    new = edge_extensions(study, cfg, load_plan(study))
    return add_runs(study, cfg, new) if new else []
