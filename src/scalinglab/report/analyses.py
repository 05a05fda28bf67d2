"""Report sections for the analyses beyond loss, read from the files their stages write:
``STUDY/adaptation-TASK.json`` (+ ``.png``) of ``compare-adaptation`` and
``STUDY/runs/*/bias.json`` (+ ``STUDY/bias_*.png``) of ``bias``. Absent files: no section."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # a damaged or half-written file is left out, never fatal to the report
    return data if isinstance(data, dict) else None


def _f(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) else "-"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _png(path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def adaptation_section(root: Path) -> str:
    parts = []
    for path in sorted(root.glob("adaptation-*.json")):
        s = _read(path)
        if not s or not s.get("runs"):
            continue
        shots = [str(k) for k in s.get("shots", [])]
        rows = [[str(r.get("run_id")), str(r.get("params_total")),
                 *(_f(r.get("shots", {}).get(k)) for k in shots), _f(r.get("finetuned")),
                 _f(r.get("finetune_gain"))] for r in s["runs"]]
        parts.append(f"<h3>{html.escape(str(s.get('task')))}: prompting vs fine-tuning</h3>"
                     + f"<p>{html.escape(str(s.get('metric')))}; chance {_f(s.get('chance'))};"
                     " gain = fine-tuned minus the best prompted score.</p>"
                     + _table(["run", "params", *(f"{k}-shot" for k in shots), "fine-tuned",
                               "gain"], rows)
                     + _png(path.with_suffix(".png"), "Accuracy against model size."))
    return "<h2>Fine-tuning vs few-shot</h2>" + "".join(parts) if parts else ""


def bias_section(root: Path) -> str:
    results = [r for p in sorted(root.glob("runs/*/bias.json")) if (r := _read(p))]
    if not results:
        return ""
    results.sort(key=lambda r: r.get("params_total") or 0)
    rows = []
    for r in results:
        g = r.get("gender", {})
        cats = r.get("sentiment", {}).get("categories", {})
        rows.append([Path(str(r.get("model"))).name, str(r.get("params_total")),
                     _f(g.get("mean_abs_log_ratio")), _f(g.get("mean_log_ratio")),
                     *(_f(cats.get(c, {}).get("range")) for c in
                       ("country", "religion", "ethnicity", "occupation"))])
    return ("<h2>Distributional bias</h2><p>Gender: log P(female)/P(male) of continuations of "
            "'The {occupation} was a' over Winogender's occupations. Sentiment: range of the "
            "group means (VADER compound) per category. At tiny scale these numbers mainly "
            "show the machinery works.</p>"
            + _table(["run", "params", "mean |gender log-ratio|", "mean gender log-ratio",
                      "country range", "religion range", "ethnicity range",
                      "occupation range"], rows)
            + _png(root / "bias_gender.png", "Gender bias against model size.")
            + _png(root / "bias_sentiment.png", "Mean sentiment per group against model size."))
