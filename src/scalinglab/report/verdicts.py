"""What the report says about a study's fits and scores, for the figures and the tables
alike: which approaches failed (the fit stage's reason), which are unreliable (the report's
rules), the interval level, why an IsoFLOP budget has no minimum, the headline evaluation
numbers and the score of guessing."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scalinglab.eval.tasks.heldout import N_CHOICES as HELDOUT_CHOICES
from scalinglab.report.data import StudyData, finite, get

APPROACHES = {"approach1": "Approach 1", "approach2": "Approach 2", "approach3": "Approach 3"}


def failed_fits(s: StudyData) -> dict[str, str]:
    """Approach -> why the fit stage could not fit it (its own error text)."""
    out = {}
    for key, label in APPROACHES.items():
        f = s.fits.get(key)
        if isinstance(f, dict) and f.get("error"):
            out[label] = str(f["error"])
        elif s.fits and not isinstance(f, dict):
            out[label] = "not in fits.json"
    return out


# An approach's N_opt exponent with a bootstrap interval wider than this says nothing about
# how to scale (Chinchilla's three approaches span 0.46..0.50).
MAX_EXPONENT_CI_WIDTH = 0.5


def unreliable_fits(s: StudyData) -> dict[str, str]:
    """Approach -> why its fitted N_opt ~ C^a is not to be trusted: a outside (0, 1) (N_opt or
    D_opt would shrink as compute grows), not finite, or a bootstrap interval too wide."""
    out = {}
    for key, label in APPROACHES.items():
        f = s.fits.get(key)
        a = f.get("a") if isinstance(f, dict) else None
        if a is None or f.get("error"):
            continue
        a_ci = f.get("a_ci") or get(f, "ci", "a")
        if not finite(a):
            out[label] = f"exponent a = {a} is not a number"
        elif not 0 < a < 1:
            out[label] = (f"a = {a:.3g} outside (0, 1): N_opt or D_opt would shrink as "
                          "compute grows")
        elif (isinstance(a_ci, list) and len(a_ci) == 2 and all(finite(v) for v in a_ci)
              and a_ci[1] - a_ci[0] > MAX_EXPONENT_CI_WIDTH):
            out[label] = (f"{ci_level(s):.0%} interval of a [{a_ci[0]:.3g}, {a_ci[1]:.3g}] "
                          f"is wider than {MAX_EXPONENT_CI_WIDTH}")
    return out


def ci_level(s: StudyData) -> float:
    """The interval level the fit stage used (fits.json ``ci_level``, 0.95 before it existed)."""
    level = s.fits.get("ci_level")
    return float(level) if isinstance(level, (int, float)) and 0 < level < 1 else 0.95


def isoflop_failure(s: StudyData, budget: float) -> str | None:
    """Why one budget's IsoFLOP parabola has no minimum (the fit stage's two cases: fewer than
    3 distinct sizes, or a parabola that opens downward), None when it has one."""
    runs = [r for r in s.complete("isoflop") if r["budget"] == budget]
    n = np.array([float(r[s.count]) for r in runs])
    if np.unique(n).size < 3:
        return f"only {np.unique(n).size} distinct sizes: a parabola needs 3"
    coef = np.polyfit(np.log10(n), [float(r["final_val_loss"]) for r in runs], 2)
    return None if coef[0] > 0 else "concave parabola: no minimum"


EVAL_METRICS = ("acc", "acc_norm", "exact_match", "bits_per_byte", "perplexity")


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The headline numbers of an evaluation ``results.json`` as 'task k-shot metric' -> value
    (the whole-task scores; clean/dirty subsets and per-source splits stay in the file)."""
    out: dict[str, float] = {}
    for task, t in (result.get("tasks") or {}).items():
        shots = t.get("shots") if isinstance(t, dict) else None
        for k, m in (shots or {}).items():
            for metric in EVAL_METRICS:
                v = m.get(metric) if isinstance(m, dict) else None
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    out[f"{task} {k}-shot {metric}"] = float(v)
    return out


# Score of guessing per task (1 / number of choices) for the tasks shipped in eval/tasks, used
# when a results.json does not record its own ``chance``. ARC's questions have 3 to 5 choices,
# nearly all 4.
KNOWN_CHANCE = {"piqa": 0.5, "winogrande": 0.5, "boolq": 0.5, "hellaswag": 0.25, "arc": 0.25,
                "heldout_continuation": 1 / HELDOUT_CHOICES}
CHANCE_METRICS = ("acc", "acc_norm")


def chance_levels(result: dict[str, Any]) -> dict[str, float]:
    """'task k-shot metric' -> score of guessing, for the accuracy metrics of known tasks."""
    out: dict[str, float] = {}
    for task, t in (result.get("tasks") or {}).items():
        c = t.get("chance") if isinstance(t, dict) else None
        c = c if isinstance(c, (int, float)) else KNOWN_CHANCE.get(task)
        for k in ((t.get("shots") or {}) if isinstance(t, dict) and c is not None else {}):
            out |= {f"{task} {k}-shot {m}": float(c) for m in CHANCE_METRICS}
    return out
