"""``compare_adaptation``: per run of a study, 0-shot, k-shot and fine-tuned accuracy on one
task, against model size (GPT-3's closing comparison, on a study's own models).

For each run: the prompted scores come from ``scalinglab eval`` (``RUN/results.json``, reused
when already there), the fine-tuned one from :func:`scalinglab.adapt.finetune.finetune` into
``STUDY/adaptation/TASK/RUN_ID/``. Each run's record is written atomically to
``STUDY/adaptation/TASK/RUN_ID.json`` and a run whose record exists (with the same settings)
is skipped, so an interrupted comparison resumes. The table of all runs goes to
``STUDY/adaptation-TASK.json`` and the figure to ``STUDY/adaptation-TASK.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from scalinglab.adapt.finetune import FinetuneConfig, finetune
from scalinglab.errors import ScalinglabError
from scalinglab.eval.api import evaluate_run
from scalinglab.io import atomic_write_json

METRIC = "acc"
"""The accuracy compared (multiple choice: argmax of summed log-likelihoods; cloze: greedy)."""


def study_runs(study: Path, only: list[str] | None = None) -> list[Path]:
    """Finished runs of the study (those with an exported model), or the ``only`` ones."""
    runs_dir = study / "runs"
    if not runs_dir.is_dir():
        raise ScalinglabError(f"{study}: not a study directory (no runs/)")
    if only:
        missing = [r for r in only if not (runs_dir / r / "model.safetensors").is_file()]
        if missing:
            raise ScalinglabError(f"{study}: no finished run {missing[0]!r} (runs/{missing[0]}"
                                  "/model.safetensors missing)")
        return [runs_dir / r for r in only]
    runs = sorted(p for p in runs_dir.iterdir() if (p / "model.safetensors").is_file())
    if not runs:
        raise ScalinglabError(f"{study}: no finished runs (no runs/*/model.safetensors)")
    return runs


def compare_run(run: Path, task: str, shots: list[int], out_dir: Path, cfg: FinetuneConfig,
                progress: bool = True) -> dict[str, Any]:
    """One run's record (see the module docstring), computed or read back."""
    path = out_dir / f"{run.name}.json"
    settings = {"task": task, "shots": shots, "finetune": cfg.as_dict()}
    old = _read(path)
    if old and old.get("settings") == settings:
        return old
    ft, _ = finetune(run, task, out_dir / run.name, cfg, progress=progress)
    results, _ = evaluate_run(run, [task], shots, seed=cfg.seed, device=cfg.device,
                              progress=progress)
    entry = results["tasks"][ft["task"]]  # results.json also holds the run's other tasks
    record = {
        "run_id": run.name, "params_total": ft["params_total"],
        "params_non_embedding": _summary(run).get("params_non_embedding"),
        "chance": ft["chance"], "n_test": ft["n_test"], "settings": settings,
        "shots": {str(k): entry["shots"][str(k)].get(METRIC) for k in shots},
        "truncated": {str(k): entry["shots"][str(k)].get("truncated") for k in shots},
        "finetuned": ft["test"].get(METRIC), "finetune_steps": ft["train"]["steps"],
        "stopped_early": ft["train"]["stopped_early"],
    }
    atomic_write_json(path, record)
    return record


def compare_adaptation(study: str | Path, task: str, shots: list[int],
                       runs: list[str] | None = None, cfg: FinetuneConfig | None = None,
                       progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Every run's record, the summary (``STUDY/adaptation-TASK.json``) and its figure."""
    study, cfg = Path(study), cfg or FinetuneConfig()
    name = task.partition("=")[0].removesuffix(".yaml").split("/")[-1]
    out_dir = study / "adaptation" / name
    records = []
    chosen = study_runs(study, runs)
    for i, run in enumerate(chosen):
        if progress:
            print(f"[{i + 1}/{len(chosen)}] {run.name}", file=sys.stderr, flush=True)
        records.append(compare_run(run, task, shots, out_dir, cfg, progress))
    records.sort(key=lambda r: r["params_total"])
    for r in records:
        best_prompted = max(v for v in r["shots"].values() if v is not None)
        r["finetune_gain"] = r["finetuned"] - best_prompted
    summary = {"study": str(study), "task": name, "metric": METRIC, "shots": shots,
               "chance": records[0]["chance"], "runs": records,
               "finetune_beats_fewshot": all(r["finetune_gain"] > 0 for r in records)}
    path = atomic_write_json(study / f"adaptation-{name}.json", summary)
    plot_adaptation(summary, study / f"adaptation-{name}.png")
    return summary, path


def plot_adaptation(summary: dict[str, Any], path: Path) -> Path:
    """Accuracy against parameters, one line per method, chance dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = summary["runs"]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    methods = [(f"{k}-shot", lambda r, k=k: r["shots"][str(k)], "o") for k in summary["shots"]]
    methods.append(("fine-tuned", lambda r: r["finetuned"], "s"))
    for label, value, marker in methods:
        # every run a marker; the line joins the mean of the runs of each size
        points = [(r["params_total"], value(r)) for r in runs if value(r) is not None]
        line = ax.plot(*_size_means(points), marker=marker, label=label)[0]
        ax.scatter(*zip(*points, strict=True), marker=marker, s=12, alpha=0.5,
                   color=line.get_color())
    if summary["chance"] is not None:
        ax.axhline(summary["chance"], color="grey", ls="--", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (total)")
    ax.set_ylabel(f"{summary['task']} {summary['metric']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _size_means(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    sizes = sorted({x for x, _ in points})
    means = [sum(y for x, y in points if x == n) / sum(1 for x, _ in points if x == n)
             for n in sizes]
    return sizes, means


def _summary(run: Path) -> dict[str, Any]:
    return _read(run / "summary.json") or {}


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
