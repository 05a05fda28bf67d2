"""The study report: ``write_report(study)`` -> ``STUDY/report.html`` (self-contained)."""

from __future__ import annotations

import os
from pathlib import Path


def write_report(study: str | Path, out: str | Path | None = None) -> Path:
    """Render the study's figures and tables into one HTML file (atomically)."""
    from scalinglab.report.data import load_study
    from scalinglab.report.html import render

    page = render(load_study(study))
    path = Path(out) if out else Path(study) / "report.html"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
