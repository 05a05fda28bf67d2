"""The study report: ``write_report(study)`` -> ``STUDY/report.html`` (self-contained)."""

from __future__ import annotations

from pathlib import Path

from scalinglab.io import atomic_write_text


def write_report(study: str | Path, out: str | Path | None = None) -> Path:
    """Render the study's figures and tables into one HTML file (atomically)."""
    from scalinglab.report.data import load_study
    from scalinglab.report.html import render

    page = render(load_study(study))
    path = Path(out) if out else Path(study) / "report.html"
    return atomic_write_text(path, page)
