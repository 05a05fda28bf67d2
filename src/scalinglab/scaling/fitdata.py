"""What the fits read: a study directory (study.csv + runs/*/metrics.jsonl) or a plain CSV.

study.csv (written by the sweep): one row per run with run_id, kind, budget, params_total,
params_non_embedding, tokens, flops_<convention>, flop_convention, final_val_loss,
final_train_loss, status. N is the parameter count the study's FLOP convention uses
(non-embedding for ``kaplan``, total otherwise) and C the compute in that convention.

A plain CSV needs columns ``params``, ``loss`` and ``tokens`` or ``flops`` (the other is derived
with C = 6 N D); an optional ``budget`` column labels IsoFLOP groups, otherwise runs are grouped
by compute; an optional ``unique_tokens`` column (distinct tokens among D) lets the
data-constrained law see repetition. Epoch AI's Chinchilla file (``Model Size``,
``Training FLOP``, ``loss``) reads as is.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from scalinglab.errors import ScalinglabError
from scalinglab.model.accounting import law_param_count
from scalinglab.scaling.fit import Curve, group_budgets

CSV_ALIASES = {"model size": "params", "training flop": "flops", "n": "params", "d": "tokens",
               "c": "flops"}


@dataclasses.dataclass
class FitData:
    """The runs one fit uses; every array is (n,) and row i is run i."""

    run_id: list[str]
    params: np.ndarray
    tokens: np.ndarray
    flops: np.ndarray
    loss: np.ndarray
    budget: np.ndarray  # IsoFLOP budget of each run, NaN for runs outside IsoFLOP profiles
    curves: list[Curve]
    flop_convention: str
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    unique_tokens: np.ndarray | None = None
    """(n,) distinct tokens among each run's D (NaN where unknown); None when no run says."""

    def __len__(self) -> int:
        return len(self.run_id)

    @property
    def flops_per_param_token(self) -> float:
        """k in C = k N D for this study (6 for the 6ND conventions)."""
        return float(np.median(self.flops / (self.params * self.tokens)))

    def subset(self, idx) -> FitData:
        """Rows ``idx`` (indices or a boolean mask; repeats allowed, as a bootstrap draws)."""
        idx = np.arange(len(self))[idx]
        return FitData(
            run_id=[self.run_id[i] for i in idx], params=self.params[idx],
            tokens=self.tokens[idx], flops=self.flops[idx], loss=self.loss[idx],
            budget=self.budget[idx], curves=[self.curves[i] for i in idx],
            flop_convention=self.flop_convention, skipped=dict(self.skipped),
            unique_tokens=None if self.unique_tokens is None else self.unique_tokens[idx])

    @property
    def repeats_data(self) -> bool:
        """Whether any run saw its unique tokens more than once (the data-constrained law's
        case)."""
        u = self.unique_tokens
        return u is not None and bool(np.any(np.isfinite(u) & (u < self.tokens * 0.999)))


def _number(value: str, where: str, field: str, allow_empty: bool = False) -> float:
    """Parse one CSV cell; a bad value names file, line and field."""
    if value is None or value.strip() == "":
        if allow_empty:
            return math.nan
        raise ScalinglabError(f"{where}: field '{field}' is empty")
    try:
        return float(value)
    except ValueError:
        raise ScalinglabError(f"{where}: field '{field}' is not a number: {value!r}") from None


def _positive(value: float, where: str, field: str) -> float:
    if not value > 0 or not math.isfinite(value):
        raise ScalinglabError(f"{where}: field '{field}' must be a positive number, got {value}")
    return value


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise ScalinglabError(f"{path}: no such file")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header, rows = list(reader.fieldnames or []), list(reader)
    except UnicodeDecodeError as e:
        raise ScalinglabError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except csv.Error as e:  # e.g. a NUL byte: a binary file given as the CSV
        raise ScalinglabError(f"{path}:{reader.line_num}: not a CSV file ({e})") from None
    if not header:
        raise ScalinglabError(f"{path}: empty file (no header line)")
    return header, rows


def _csv_names(path: Path, header: list[str], loss_column: str | None,
               require_loss: bool = True) -> dict[str, str]:
    """Header -> canonical column name; ``loss_column`` (exact header) becomes ``loss``."""
    names = {h: CSV_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header}
    if loss_column is not None:
        if loss_column not in header:
            raise ScalinglabError(f"{path}: no column {loss_column!r} (--loss-column); has "
                                  f"{', '.join(header)}")
        names = {h: ("loss" if h == loss_column else (v if v != "loss" else "loss (unused)"))
                 for h, v in names.items()}
    cols = set(names.values())
    need = {"params", "loss"} if require_loss else {"params"}
    if not need <= cols or not ({"tokens", "flops"} & cols):
        raise ScalinglabError(f"{path}: needs columns {', '.join(sorted(need))} and tokens or "
                              f"flops; has {', '.join(header)}")
    return names


def _matches(raw: dict[str, str], where: dict[str, str] | None) -> bool:
    return not where or all(raw.get(k) == v for k, v in where.items())


def load_csv(path: str | Path, loss_column: str | None = None,
             where: dict[str, str] | None = None, require_loss: bool = True) -> FitData:
    """A plain CSV of runs: params, loss and tokens or flops (C = 6 N D fills the other).

    ``loss_column`` picks another column as the loss; ``where`` keeps only the rows whose
    columns equal the given values (e.g. one corpus of a multi-corpus table). Rows with a
    missing or non-finite loss are skipped and counted; a zero or negative loss, parameter
    or token count is an error naming file, line and field. Run ids come from a ``name`` or
    ``run_id`` column when there is one. ``require_loss=False`` reads runs to predict: the
    loss column may be absent (NaN).
    """
    path = Path(path)
    header, rows = _read_csv(path)
    names = _csv_names(path, header, loss_column, require_loss)
    cols = set(names.values())
    if where and (unknown := [k for k in where if k not in header]):
        raise ScalinglabError(f"{path}: no column(s) {', '.join(unknown)} to filter on")
    ids, n, d, c, loss, budget, unique = [], [], [], [], [], [], []
    skipped: dict[str, int] = {}
    for line, raw in enumerate(rows, start=2):
        if not _matches(raw, where):
            continue
        row = {names[k]: v for k, v in raw.items() if k in names}
        at = f"{path}:{line}"
        value = _number(row.get("loss"), at, "loss", allow_empty=True)
        if require_loss and not math.isfinite(value):
            skipped["non-finite loss"] = skipped.get("non-finite loss", 0) + 1
            continue
        loss.append(_positive(value, at, "loss") if require_loss else value)
        n.append(_positive(_number(row["params"], at, "params"), at, "params"))
        d.append(_positive(_number(row.get("tokens"), at, "tokens"), at, "tokens")
                 if "tokens" in cols else math.nan)
        c.append(_positive(_number(row.get("flops"), at, "flops"), at, "flops")
                 if "flops" in cols else math.nan)
        budget.append(_number(row.get("budget"), at, "budget", allow_empty=True)
                      if "budget" in cols else math.nan)
        unique.append(_number(row.get("unique_tokens"), at, "unique_tokens", allow_empty=True)
                      if "unique_tokens" in cols else math.nan)
        ids.append(row.get("name") or row.get("run_id") or f"row{line}")
    if not loss:
        raise ScalinglabError(f"{path}: no runs with a finite loss"
                              + (f" matching {where}" if where else ""))
    n, d, c, loss, budget, unique = (np.array(v, dtype=np.float64)
                                     for v in (n, d, c, loss, budget, unique))
    d = np.where(np.isnan(d), c / (6 * n), d)
    c = np.where(np.isnan(c), 6 * n * d, c)
    if "budget" not in cols:
        budget = group_budgets(c)
    curves = [Curve(params=n[i], flops=c[i:i + 1], tokens=d[i:i + 1], loss=loss[i:i + 1])
              for i in range(n.size)]
    return FitData(ids, n, d, c, loss, budget, curves, flop_convention="6ND (csv)",
                   skipped=skipped,
                   unique_tokens=unique if "unique_tokens" in cols else None)


def _read_curve(path: Path, params: float, flops_scale: float) -> Curve | None:
    """A run's metrics.jsonl as a curve: val loss where evaluated, else train loss.

    metrics.jsonl counts flops in the chinchilla convention; ``flops_scale`` converts to the
    study's convention (per-token FLOPs are fixed per run, so the ratio is a constant).
    """
    if not path.is_file():
        return None
    rows = []
    with path.open() as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ScalinglabError(f"{path}:{line_no}: not valid JSON") from None
    key = "val_loss" if any(r.get("val_loss") is not None for r in rows) else "train_loss"
    pts = [(r["flops"], r["tokens"], r[key]) for r in rows
           if r.get(key) is not None and r.get("flops") and r.get("tokens")]
    if not pts:
        return None
    arr = np.array(pts, dtype=np.float64)  # (T, 3)
    return Curve(params=params, flops=arr[:, 0] * flops_scale, tokens=arr[:, 1], loss=arr[:, 2])


STUDY_COLUMNS = ("run_id", "kind", "budget", "params_total", "params_non_embedding", "tokens",
                 "flop_convention", "final_train_loss", "final_val_loss", "status")


def load_study(study: str | Path) -> FitData:
    """Complete runs of a study directory; skipped rows are counted in ``skipped``."""
    study = Path(study)
    path = study / "study.csv"
    header, rows = _read_csv(path)
    missing = [c for c in STUDY_COLUMNS if c not in header]
    if missing:
        raise ScalinglabError(f"{path}: missing column(s) {', '.join(missing)}")
    conventions = {r["flop_convention"] for r in rows if r["status"] == "complete"}
    if len(conventions) > 1:
        raise ScalinglabError(f"{path}: runs mix FLOP conventions {sorted(conventions)}")
    conv = conventions.pop() if conventions else "chinchilla"
    if f"flops_{conv}" not in header:
        raise ScalinglabError(f"{path}: flop_convention {conv!r} but no column flops_{conv}")
    n_col = f"params_{law_param_count(conv)}"
    skipped: dict[str, int] = {}
    out: dict[str, list] = {k: [] for k in ("id", "n", "d", "c", "loss", "budget", "curve")}
    for line, r in enumerate(rows, start=2):
        where = f"{path}:{line}"
        if r["status"] != "complete":
            why = "diverged" if (r.get("error") or "").startswith("diverged") else r["status"]
            skipped[why or "no status"] = skipped.get(why or "no status", 0) + 1
            continue
        loss = _number(r["final_val_loss"], where, "final_val_loss", allow_empty=True)
        if math.isnan(loss):
            loss = _number(r["final_train_loss"], where, "final_train_loss", allow_empty=True)
        if not math.isfinite(loss):
            skipped["non-finite loss"] = skipped.get("non-finite loss", 0) + 1
            continue
        n = _positive(_number(r[n_col], where, n_col), where, n_col)
        c = _positive(_number(r[f"flops_{conv}"], where, f"flops_{conv}"), where,
                      f"flops_{conv}")
        c_chin = _number(r.get("flops_chinchilla"), where, "flops_chinchilla", allow_empty=True)
        scale = c / c_chin if c_chin and not math.isnan(c_chin) else 1.0
        d = _positive(_number(r["tokens"], where, "tokens"), where, "tokens")
        curve = _read_curve(study / "runs" / r["run_id"] / "metrics.jsonl", n, scale)
        out["id"].append(r["run_id"])
        out["n"].append(n)
        out["d"].append(d)
        out["c"].append(c)
        out["loss"].append(loss)
        is_iso = r["kind"] == "isoflop"
        out["budget"].append(_number(r["budget"], where, "budget", allow_empty=True)
                             if is_iso else math.nan)
        out["curve"].append(curve or Curve(n, np.array([c]), np.array([d]), np.array([loss])))
    if not out["id"]:
        raise ScalinglabError(f"{path}: no complete runs to fit")
    arr = {k: np.array(out[k], dtype=np.float64) for k in ("n", "d", "c", "loss", "budget")}
    return FitData(out["id"], arr["n"], arr["d"], arr["c"], arr["loss"], arr["budget"],
                   out["curve"], flop_convention=conv, skipped=skipped)


def drop_worst(data: FitData, k: int) -> FitData:
    """Without the ``k`` runs of largest loss (Epoch's replication drops 5 such outliers)."""
    if k <= 0:
        return data
    if k >= len(data):
        raise ScalinglabError(f"--drop-worst {k} would drop all {len(data)} runs")
    keep = np.sort(np.argsort(data.loss, kind="stable")[: len(data) - k])
    out = data.subset(keep)
    out.skipped["largest loss (--drop-worst)"] = k
    return out
