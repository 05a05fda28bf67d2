"""Per-source kept / dropped documents of a finished ``prepare``, from its ``stats.json``.

The filters can silently remove most of a source that does not look like prose (source code,
tables): this summary is what ``data prepare`` prints at the end so that loss is visible,
with the top drop reasons and the reader's skipped records (with ``file:line`` examples).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

LOSS_WARN_FRACTION = 0.5  # warn when a source keeps less than half of what was read
FILTER_SWITCH = "quality.enabled=false repetition.enabled=false"


def source_summary(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per source: read, kept, dropped (by reason, most first) and reader skips."""
    drops: dict[str, Counter] = {}
    for step in stats["steps"]:
        for src, s in step.get("per_source", {}).items():
            for reason, d in s["dropped"].items():
                drops.setdefault(src, Counter())[f"{step['name']}.{reason}"] += d["docs"]
    rows = []
    for name, rs in sorted(stats["sources"].items()):
        counts = rs["counts"]
        read = counts.get("read.docs", 0)
        kept = stats["clean"].get(name, {}).get("docs", 0)
        skipped = {k.removeprefix("skipped."): v for k, v in counts.items()
                   if k.startswith("skipped.")}
        as_text = {k.removeprefix("read.as_text."): v for k, v in counts.items()
                   if k.startswith("read.as_text.")}
        rows.append({"source": name, "read": read, "kept": kept, "dropped": read - kept,
                     "reasons": drops.get(name, Counter()).most_common(),
                     "skipped": skipped, "skip_examples": rs.get("examples", {}),
                     "as_text": as_text,
                     "mostly_lost": read > 0 and kept < read * LOSS_WARN_FRACTION})
    return rows


def format_summary(rows: list[dict[str, Any]], top: int = 3) -> list[str]:
    """The lines ``data prepare`` prints: a table, then skips and warnings."""
    width = max([len(r["source"]) for r in rows] + [6])
    lines = [f"  {'source':<{width}} {'read':>8} {'kept':>8} {'dropped':>8}  top drop reasons"]
    for r in rows:
        reasons = ", ".join(f"{k} {v}" for k, v in r["reasons"][:top]) or "-"
        lines.append(f"  {r['source']:<{width}} {r['read']:>8} {r['kept']:>8} "
                     f"{r['dropped']:>8}  {reasons}")
    for r in rows:
        if r["as_text"]:
            taken = ", ".join(f"{k} {v}" for k, v in sorted(r["as_text"].items()))
            lines.append(f"  {r['source']}: files read as text by suffix: {taken}")
        for reason, n in sorted(r["skipped"].items()):
            first = (r["skip_examples"].get(reason) or ["?"])[0]
            lines.append(f"  {r['source']}: skipped {n} {reason} (first at {first})")
    for r in rows:
        if r["mostly_lost"]:
            lines.append(f"warning: source {r['source']!r} kept {r['kept']} of {r['read']} "
                         f"documents; the filters may not suit it: {FILTER_SWITCH} disables "
                         "them")
    return lines
